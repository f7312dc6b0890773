"""POST /v1/match: a brand in the corpus (JSON) or a new brand's images and text (multipart)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from congruence.api.deps import EngineDep, KeyDep, ServicesDep
from congruence.api.params import feedback_of, filters_of, ranking_text, signals_text
from congruence.api.schemas import MatchRequest, MatchResponse, NewBrandForm
from congruence.api.uploads import read_form, read_images, text_fields
from congruence.api.views import answer, in_query_thread
from congruence.search.engine import Engine, Snapshot
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.hits import Hit

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
    if ctype.startswith("application/json"):
        try:
            req = MatchRequest.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None
        filters, feedback = filters_of(req), feedback_of(req)
        if req.query_id is not None:  # a new brand searched before: re-run with feedback, no upload
            query = services.queries.get(req.query_id)
            return await in_query_thread(
                answer,
                engine,
                lambda snap: engine.match_query(query, req.k, filters, req.posts, feedback, snap, req.signals),
                lambda snap: (
                    ranking_text(engine.ranking(snap), feedback, snap.head is not None)
                    + signals_text(engine.signals(snap, req.signals, feedback=feedback))
                ),
                req.query_id,
                filters,
            )
        brand_id = req.brand_id
        assert brand_id is not None
        return await in_query_thread(
            answer,
            engine,
            lambda snap: engine.match_brand(brand_id, req.k, filters, req.posts, feedback, snap, req.signals),
            lambda snap: (
                ranking_text(engine.ranking(snap), feedback, snap.head is not None)
                + signals_text(engine.signals(snap, req.signals, brand_id=brand_id, feedback=feedback))
            ),
            None,
            filters,
            brand_id,
        )
    if ctype.startswith("multipart/form-data"):
        form = await read_form(request, MAX_IMAGES)
        try:
            fields = NewBrandForm.model_validate(text_fields(form, skip=("images",)))
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None
        uploads = await read_images(form, "images", MAX_IMAGES)
        if not uploads and not fields.text.strip():
            raise HTTPException(422, "describe the brand with at least one image or some text")
        filters = filters_of(fields)
        queries = services.queries

        def new_brand(snap: Snapshot) -> list[Hit]:
            filters.category_code(snap.table)  # before the upload is encoded and kept
            query = engine.describe_new([u.image for u in uploads], fields.text, snap)
            ids.append(queries.put(query))
            return engine.match_query(query, fields.k, filters, fields.posts, Feedback(), snap)

        ids: list[str] = []
        return await in_query_thread(
            _answer_new,
            engine,
            new_brand,
            lambda snap: (
                ranking_text(engine.ranking(snap), Feedback(), snap.head is not None)
                + signals_text(engine.signals(snap, fields.signals))
            ),
            ids,
            filters,
        )
    raise HTTPException(
        415,
        'send JSON {"brand_id": ...} for a brand in the corpus, '
        "or multipart/form-data with images and text for a new brand",
    )


def _answer_new(
    engine: Engine,
    rank: Callable[[Snapshot], list[Hit]],
    ranking: Callable[[Snapshot], str],
    ids: list[str],
    filters: Filters,
) -> MatchResponse:
    """``answer`` for a new brand, whose query id is known once it is described."""
    out = answer(engine, rank, ranking, None, filters)
    return out.model_copy(update={"query_id": ids[0]})
