"""POST /v1/match: a brand in the corpus (JSON) or a new brand's images and text (multipart)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from congruence.api.deps import EngineDep, KeyDep, ServicesDep
from congruence.api.params import feedback_of, filters_of, ranking_text
from congruence.api.schemas import MatchRequest, MatchResponse, NewBrandForm
from congruence.api.uploads import read_form, read_images, text_fields
from congruence.api.views import match_response
from congruence.search.feedback import Feedback

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
        filters, feedback = filters_of(req), feedback_of(req)
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
        filters, feedback = filters_of(fields), Feedback()
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
    ranking = ranking_text(engine.ranking(snap), feedback, snap.head is not None)
    return match_response(engine.store, hits, ranking, query_id)
