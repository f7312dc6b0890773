"""POST /v1/match: a brand in the corpus (JSON) or a new brand's images and text (multipart)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from congruence.api.deps import EngineDep, KeyDep, ServicesDep
from congruence.api.schemas import (
    FeedbackFields,
    FilterFields,
    MatchRequest,
    MatchResponse,
    NewBrandForm,
)
from congruence.api.uploads import read_form, read_images, text_fields
from congruence.api.views import match_response
from congruence.search.feedback import SEPARATE, Feedback
from congruence.search.filters import Filters

router = APIRouter(tags=["match"])
MAX_IMAGES = 20


_MULTIPART = {
    "type": "object",
    "properties": {
        "images": {
            "type": "array",
            "maxItems": MAX_IMAGES,
            "items": {"type": "string", "format": "binary"},
            "description": f"up to {MAX_IMAGES} images of the brand (JPEG, PNG, WebP...)",
        },
        **NewBrandForm.model_json_schema()["properties"],
    },
}
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": MatchRequest.model_json_schema()},
            "multipart/form-data": {"schema": _MULTIPART},
        },
    }
}


def _filters(f: FilterFields) -> Filters:
    return Filters.make(
        f.category,
        f.min_followers,
        f.max_followers,
        micro=f.micro,
        brand_safe=f.brand_safe,
        exclude_categories=f.exclude_categories,
        safe_last=f.safe_last,
        metrics=f.bounds(),
    )


def _feedback(f: FeedbackFields) -> Feedback:
    return Feedback.make(f.like, f.dislike, f.like_weight, f.dislike_weight)


WITH_FEEDBACK = (
    ", plus the feedback terms (like weight x similarity to the closest liked influencer, minus "
    "dislike weight x (similarity to the closest disliked one + once something is liked, a push that "
    "grows with every disliked one nearby), plus, once both are marked, "
    f"{SEPARATE:g} x the position along what tells the liked from the disliked, by least squares over "
    "pooled embeddings)"
)
SIMILARITY = {
    False: "; similarity: the cosine of pooled embeddings",
    True: "; similarity: the cosine in the head's influencer tower mixed with the cosine of pooled "
    "embeddings (1:1 to the liked, 1:3 to the disliked)",
}


def _ranking(base: str, feedback: Feedback, head: bool) -> str:
    """How a list was scored, in words: ``base``, and the feedback terms when there was feedback
    (``head``: a head was in service)."""
    return base + WITH_FEEDBACK + SIMILARITY[head] if feedback.active else base


@router.post(
    "/v1/match",
    response_model=MatchResponse,
    openapi_extra=_OPENAPI,
    summary="Influencers that match a brand, best first",
)
async def match(request: Request, engine: EngineDep, services: ServicesDep, _key: KeyDep) -> MatchResponse:
    ctype = request.headers.get("content-type", "")
    query_id = None
    snap = await run_in_threadpool(engine.current)  # one snapshot answers and names its head
    if ctype.startswith("application/json"):
        try:
            req = MatchRequest.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None
        filters, feedback = _filters(req), _feedback(req)
        if req.query_id is not None:  # a new brand searched before: re-run with feedback, no upload
            query_id, query = req.query_id, services.queries.get(req.query_id)
            hits = await run_in_threadpool(engine.match_query, query, req.k, filters, req.posts, feedback, snap)
        else:
            assert req.brand_id is not None
            hits = await run_in_threadpool(engine.match_brand, req.brand_id, req.k, filters, req.posts, feedback, snap)
    elif ctype.startswith("multipart/form-data"):
        form = await read_form(request, MAX_IMAGES)
        try:
            fields = NewBrandForm.model_validate(text_fields(form, skip=("images",)))
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None
        uploads = await read_images(form, "images", MAX_IMAGES)
        if not uploads and not fields.text.strip():
            raise HTTPException(422, "describe the brand with at least one image or some text")
        filters, feedback = _filters(fields), Feedback()
        filters.category_code(snap.table)  # before the upload is encoded and kept
        query = await run_in_threadpool(engine.describe_new, [u.image for u in uploads], fields.text, snap)
        query_id = services.queries.put(query)
        hits = await run_in_threadpool(engine.match_query, query, fields.k, filters, fields.posts, feedback, snap)
    else:
        raise HTTPException(
            415,
            'send JSON {"brand_id": ...} for a brand in the corpus, '
            "or multipart/form-data with images and text for a new brand",
        )
    ranking = _ranking(engine.ranking(snap), feedback, snap.head is not None)
    return match_response(engine.store, hits, ranking, query_id)
