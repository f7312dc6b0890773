"""Liveness and readiness: /healthz (the process answers), /readyz (it can serve queries)."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from congruence.api.deps import ServicesDep
from congruence.api.schemas import Health, Readiness, ShardReadiness
from congruence.core.errors import CongruenceError
from congruence.search.shards import ShardedEngine, ShardHealth

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(services: ServicesDep) -> JSONResponse:
    try:
        engine = services.engine()
        engine.pool.ping()
        engine.current()  # on the newest generation first, as a query would be
    except (CongruenceError, psycopg.Error) as e:  # the answer, not an error of this route
        reason = str(e) if isinstance(e, CongruenceError) else f"database unavailable: {type(e).__name__}"
        body = Readiness(ready=False, database=reason, index="not loaded")
        return JSONResponse(body.model_dump(), status_code=503)
    snap = engine.snapshot
    head = snap.head.version if snap.head is not None else None
    body = Readiness(
        ready=True,
        database="reachable",
        index=f"{snap.index.kind}, {snap.space}",
        influencers=snap.index.n_alive,
        head=head,
        generation=snap.generation,
        load_error=engine.load_error,
    )
    if isinstance(engine, ShardedEngine):  # ready when every shard is, on the ingress's generation
        shards = [_shard_out(h, snap.generation) for h in engine.shard_health()]
        ready = all(s.ready for s in shards)
        body = body.model_copy(
            update={
                "ready": ready,
                "index": f"{len(shards)} shards, {snap.space}",
                "influencers": sum(s.influencers or 0 for s in shards),
                "shards": shards,
            }
        )
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
    return JSONResponse(body.model_dump())


def _shard_out(h: ShardHealth | str, generation: int) -> ShardReadiness:
    if isinstance(h, str):
        return ShardReadiness(ready=False, error=h)
    behind = None if h.generation == generation else f"on generation {h.generation}, the ingress on {generation}"
    return ShardReadiness(
        shard=h.shard,
        ready=behind is None and h.load_error is None,
        generation=h.generation,
        influencers=h.accounts,
        head=h.head,
        error=h.load_error or behind,
    )
