"""Domain results → response schemas (URLs included), in one place."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import anyio.to_thread

from congruence.api.schemas import AccountOut, AccountPost, FlagOut, MatchHit, MatchResponse, PostOut, SafetyOut
from congruence.api.schemas_account_metrics import FollowerPointOut, metrics_out
from congruence.api.schemas_collaborations import collaborations_out
from congruence.api.schemas_lists import OtherListOut
from congruence.search.engine import Engine, Snapshot
from congruence.search.filters import Filters
from congruence.search.hits import Hit
from congruence.store import account_metrics as metrics_store
from congruence.store import collaborations as graph
from congruence.store import flags as flag_store
from congruence.store import follower_history
from congruence.store.list_views import in_lists
from congruence.store.records import Store

THUMB_PX = 256
T = TypeVar("T")


def _q(value: str) -> str:
    return quote(value, safe="")


def image_urls(post_id: str, has_image: bool) -> tuple[str | None, str | None]:
    if not has_image:
        return None, None
    base = f"/v1/posts/{_q(post_id)}/image"
    return base, f"{base}?size={THUMB_PX}"


def safety_out(s: flag_store.AccountSafety | None) -> SafetyOut | None:
    if s is None:
        return None
    return SafetyOut(
        screened_posts=s.screened,
        flagged_posts=s.flagged,
        flagged_share=round(s.share, 4),
        flags=[
            FlagOut(
                post_id=f.post_id,
                category=f.category,
                source=f.source,  # type: ignore[arg-type]
                evidence=f.evidence,
                score=round(f.score, 4),
            )
            for f in s.flags
        ],
    )


QUERY_THREADS = 2 * (os.cpu_count() or 1)  # queries computed at once: more only trade the GIL back and forth
_limiter: anyio.CapacityLimiter | None = None


async def in_query_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a worker thread, at most ``QUERY_THREADS`` at once (the others wait
    their turn on the event loop: a query holds the GIL for most of its time, and many
    threads taking turns are slower, in total, than a few)."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(QUERY_THREADS)
    return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=_limiter)


def answer(
    engine: Engine,
    rank: Callable[[Snapshot], list[Hit]],
    ranking: Callable[[Snapshot], str],
    query_id: str | None = None,
    filters: Filters | None = None,
    brand_id: str | None = None,
) -> MatchResponse:
    """One query, whole, in the calling (worker) thread: the snapshot in service, ``rank`` on
    it, and the hits decorated (images, safety, metrics) on a pooled connection. The
    snapshot answers and names its head: ``ranking`` of it; and says why ``filters`` (those
    ``rank`` applied) may give less than they seem to ask for (``Filters.warnings``). brand_id:
    the brand matched, whose campaign lists holding a hit it names (``in_lists``)."""
    snap = engine.current()
    hits = rank(snap)
    with engine.reading() as store:
        out = match_response(store, hits, ranking(snap), query_id, brand_id)
    warnings = filters.warnings(snap.collabs) if filters is not None else []
    head = snap.head.version if snap.head else None
    return out.model_copy(update={"generation": snap.generation, "head": head, "warnings": warnings})


def match_response(
    store: Store, hits: list[Hit], ranking: str, query_id: str | None = None, brand_id: str | None = None
) -> MatchResponse:
    with_image = store.posts_with_images([p.post_id for h in hits for p in h.top_posts])
    safety = flag_store.accounts(store, [h.influencer_id for h in hits], max_flags=5)
    metrics = metrics_store.read(store, [h.influencer_id for h in hits])
    listed = in_lists(store, brand_id, [h.influencer_id for h in hits]) if brand_id else {}
    data = []
    for h in hits:
        posts = [
            PostOut(
                post_id=p.post_id,
                score=p.score,
                **dict(
                    zip(("image_url", "thumbnail_url"), image_urls(p.post_id, p.post_id in with_image), strict=True)
                ),
            )
            for p in h.top_posts
        ]
        data.append(
            MatchHit(
                influencer_id=h.influencer_id,
                handle=h.handle,
                category=h.category,
                followers=h.followers,
                score=h.score,
                rank=h.rank,
                top_posts=posts,
                similar_url=f"/v1/influencers/{_q(h.influencer_id)}/similar",
                account_url=f"/v1/accounts/{_q(h.influencer_id)}",
                safety=safety_out(safety.get(h.influencer_id)),
                metrics=metrics_out(metrics.get(h.influencer_id)),
                in_lists=[OtherListOut(**o.__dict__) for o in listed.get(h.influencer_id, ())],
            )
        )
    return MatchResponse(data=data, count=len(data), ranking=ranking, query_id=query_id)


def account_out(store: Store, account_id: str, n_posts: int, n_edges: int = 100) -> AccountOut:
    """The account, its newest ``n_posts`` posts, its metrics and who it worked with (at most
    ``n_edges`` edges per list, most posts first)."""
    acc = store.account(account_id)
    collabs = graph.account_collaborations(store, acc.id, n_edges)
    posts = []
    for p in store.account_posts(account_id, n_posts):
        image_url, thumb = image_urls(p.id, p.has_image)
        posts.append(
            AccountPost(post_id=p.id, caption=p.caption, likes=p.likes, image_url=image_url, thumbnail_url=thumb)
        )
    return AccountOut(
        id=acc.id,
        kind=acc.kind,
        handle=acc.handle,
        category=acc.category,
        followers=acc.followers,
        n_posts=acc.posts,
        posts=posts,
        metrics=metrics_out(metrics_store.read(store, [account_id]).get(account_id)),
        follower_history=[
            FollowerPointOut.model_validate(s.to_dict()) for s in follower_history.history(store, acc.id)
        ],
        collaborations=collabs.handles,
        worked_with=collaborations_out(collabs.worked_with),
        worked_with_total=collabs.worked_with_total,
        tagged_by=collaborations_out(collabs.tagged_by),
        tagged_by_total=collabs.tagged_by_total,
        partners=collaborations_out(collabs.partners),
        partners_total=collabs.partners_total,
    )
