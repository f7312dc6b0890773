"""Typed dependencies: what a route needs, taken from the one ``Services`` of the app."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from congruence.api.export_jobs import ExportJobs
from congruence.api.keys import verify_key
from congruence.api.services import Services
from congruence.search.engine import Engine
from congruence.search.explain import Explainer

_bearer = HTTPBearer(auto_error=False, description="an API key from `congruence keys create NAME`")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_key(
    services: ServicesDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str | None:
    """The caller's key id; None when the server runs with --no-auth."""
    if not services.auth:
        return None
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "missing API key: send the header 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with services.pool().reading() as store:
        key_id = verify_key(store.conn, creds.credentials, touch=not services.read_only)
    if key_id is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    wait = services.limiter.take(key_id)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"rate limit of {services.settings.rate_limit} requests a minute reached "
            f"for this key; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    return key_id


def get_engine(services: ServicesDep) -> Engine:
    return services.engine()


def get_explainer(services: ServicesDep) -> Explainer:
    return services.explainer()


def get_exports(services: ServicesDep) -> ExportJobs:
    return services.exports()


KeyDep = Annotated[str | None, Depends(require_key)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ExplainerDep = Annotated[Explainer, Depends(get_explainer)]
ExportsDep = Annotated[ExportJobs, Depends(get_exports)]
