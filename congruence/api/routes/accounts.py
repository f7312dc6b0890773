"""Accounts: find brands or influencers, read one with its first posts and who it worked with, list
categories."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from congruence.api.deps import EngineDep, KeyDep
from congruence.api.schemas import (
    AccountList,
    AccountOut,
    AccountSummary,
    CategoryCount,
    CategoryList,
)
from congruence.api.schemas_account_metrics import AccountMetricsResponse, PeerPointOut, PostPointOut, metrics_out
from congruence.api.views import account_out
from congruence.store import account_metrics as metrics_store
from congruence.store.account_views import peer_points, post_points
from congruence.store.collaborations import MAX_EDGES

router = APIRouter(tags=["accounts"])


@router.get("/v1/accounts", response_model=AccountList)
def find_accounts(
    engine: EngineDep,
    _key: KeyDep,
    kind: Literal["brand", "influencer"] = "brand",
    q: Annotated[str, Query(max_length=200, description="part of the id or handle")] = "",
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> AccountList:
    with engine.reading() as store:
        rows = store.find_accounts(kind, q, limit)
    return AccountList(data=[AccountSummary(id=i, handle=h, category=c) for i, h, c in rows], count=len(rows))


@router.get("/v1/categories", response_model=CategoryList)
def categories(engine: EngineDep, _key: KeyDep) -> CategoryList:
    with engine.reading() as store:
        rows = store.category_counts("influencer")
    return CategoryList(data=[CategoryCount(category=c, count=n) for c, n in rows], count=len(rows))


# before /v1/accounts/{account_id:path}, which would take ".../metrics" for an id
@router.get(
    "/v1/accounts/{account_id:path}/metrics",
    response_model=AccountMetricsResponse,
    summary="An account's metrics, likes over time, and engagement rate against followers of its peers",
)
def account_metrics(account_id: str, engine: EngineDep, _key: KeyDep) -> AccountMetricsResponse:
    with engine.reading() as store:
        acc = store.account(account_id)
        points, (peers, total) = post_points(store, account_id), peer_points(store, account_id)
        m = metrics_store.read(store, [account_id]).get(account_id)
    return AccountMetricsResponse(
        account_id=acc.id,
        kind=acc.kind,
        category=acc.category,
        followers=acc.followers,
        metrics=metrics_out(m),
        posts=[PostPointOut(**p.__dict__) for p in points],
        peers=[PeerPointOut(**p.__dict__) for p in peers],
        peers_total=total,
    )


@router.get("/v1/accounts/{account_id:path}", response_model=AccountOut)
def account(
    account_id: str,
    engine: EngineDep,
    _key: KeyDep,
    posts: Annotated[int, Query(ge=0, le=100)] = 12,
    edges: Annotated[
        int, Query(ge=0, le=MAX_EDGES, description="at most this many edges per collaboration list, most posts first")
    ] = 100,
) -> AccountOut:
    with engine.reading() as store:
        return account_out(store, account_id, posts, edges)
