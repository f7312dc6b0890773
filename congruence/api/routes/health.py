"""Liveness and readiness: /healthz (the process answers), /readyz (it can serve queries)."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from congruence.api.deps import ServicesDep
from congruence.api.schemas import Health, Readiness
from congruence.core.errors import CongruenceError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(services: ServicesDep) -> JSONResponse:
    try:
        engine = services.engine()
        engine.pool.ping()
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
    return JSONResponse(body.model_dump())
