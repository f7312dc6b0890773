"""Look-alikes: GET /v1/influencers/{id}/similar (one influencer), POST /v1/similar (several)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from congruence.api.deps import EngineDep, KeyDep
from congruence.api.params import feedback_of, filters_of, ranking_text, signals_text
from congruence.api.schemas import MatchResponse, SimilarRequest
from congruence.api.views import answer, in_query_thread
from congruence.search.collab_filters import MAX_HANDLES
from congruence.search.engine import MAX_K
from congruence.search.feedback import MAX_FEEDBACK, Feedback
from congruence.search.filters import Filters
from congruence.search.metric_filters import MetricBounds
from congruence.store.lists import MAX_NAME

router = APIRouter(tags=["influencers"])
RANKING = "cosine similarity of the influencers' embeddings"
Ids = Annotated[list[str], Query(max_length=MAX_FEEDBACK)]


@router.get("/v1/influencers/{influencer_id:path}/similar", response_model=MatchResponse)
async def similar(
    influencer_id: str,
    engine: EngineDep,
    _key: KeyDep,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 20,
    posts: Annotated[int, Query(ge=0, le=12)] = 3,
    category: Annotated[str | None, Query(max_length=100)] = None,
    min_followers: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    max_followers: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    micro: bool = False,
    brand_safe: bool = False,
    exclude_categories: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006 (FastAPI copies)
    safe_last: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    like: Ids = [],  # noqa: B006
    dislike: Ids = [],  # noqa: B006
    like_weight: Annotated[float | None, Query(ge=0, le=10, allow_inf_nan=False)] = None,
    dislike_weight: Annotated[float | None, Query(ge=0, le=10, allow_inf_nan=False)] = None,
    min_er: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_er: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_sponsored_share: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    min_posts_per_week: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    no_flags: bool = False,
    min_growth: Annotated[float | None, Query(ge=-1, allow_inf_nan=False)] = None,
    max_growth: Annotated[float | None, Query(ge=-1, allow_inf_nan=False)] = None,
    worked_with: Annotated[list[str], Query(max_length=MAX_HANDLES)] = [],  # noqa: B006
    not_worked_with: Annotated[list[str], Query(max_length=MAX_HANDLES)] = [],  # noqa: B006
    since: date | None = None,
    exclude_list: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)] = None,
    exclude_status: Annotated[list[str], Query(max_length=5)] = [],  # noqa: B006
    signals: Literal["all", "content"] = "all",
) -> MatchResponse:
    filters = Filters.make(
        category,
        min_followers,
        max_followers,
        micro=micro,
        brand_safe=brand_safe,
        exclude_categories=exclude_categories,
        safe_last=safe_last,
        metrics=MetricBounds(min_er, max_er, max_sponsored_share, min_posts_per_week, no_flags, min_growth, max_growth),
        worked_with=worked_with,
        not_worked_with=not_worked_with,
        since=since,
        exclude_list=exclude_list,
        exclude_status=[s for v in exclude_status for s in v.split(",") if s.strip()],
    )
    feedback = Feedback.make(like, dislike, like_weight, dislike_weight)
    return await in_query_thread(
        answer,
        engine,
        lambda snap: engine.similar(influencer_id, k, filters, posts, feedback, snap, signals),
        lambda snap: (
            ranking_text(RANKING, feedback, snap.head is not None)
            + signals_text(engine.signals(snap, signals, seeds=[influencer_id], feedback=feedback))
        ),
        None,
        filters,
    )


@router.post("/v1/similar", response_model=MatchResponse, summary="Look-alikes of several influencers, best first")
async def similar_to_several(req: SimilarRequest, engine: EngineDep, _key: KeyDep) -> MatchResponse:
    feedback = feedback_of(req)
    filters = filters_of(req)
    return await in_query_thread(
        answer,
        engine,
        lambda snap: engine.similar(req.influencers, req.k, filters, req.posts, feedback, snap, req.signals),
        lambda snap: (
            ranking_text(RANKING + " (to the mean of the set)", feedback, snap.head is not None)
            + signals_text(engine.signals(snap, req.signals, seeds=req.influencers, feedback=feedback))
        ),
        None,
        filters,
    )
