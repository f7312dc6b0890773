"""GET /v1/influencers/{id}/similar: influencers like one you know."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from congruence.api.deps import EngineDep, KeyDep
from congruence.api.schemas import MatchResponse
from congruence.api.views import match_response
from congruence.search.engine import MAX_K
from congruence.search.filters import Filters

router = APIRouter(tags=["influencers"])


@router.get("/v1/influencers/{influencer_id:path}/similar", response_model=MatchResponse)
async def similar(influencer_id: str, engine: EngineDep, _key: KeyDep,
                  k: Annotated[int, Query(ge=1, le=MAX_K)] = 20,
                  posts: Annotated[int, Query(ge=0, le=12)] = 3,
                  category: Annotated[str | None, Query(max_length=100)] = None,
                  min_followers: Annotated[int | None, Query(ge=0, le=10**12)] = None,
                  max_followers: Annotated[int | None, Query(ge=0, le=10**12)] = None,
                  micro: bool = False) -> MatchResponse:
    filters = Filters.make(category, min_followers, max_followers, micro=micro)
    hits = await run_in_threadpool(engine.similar, influencer_id, k, filters, posts)
    return match_response(engine.store, hits, "cosine similarity of the two influencers' embeddings")
