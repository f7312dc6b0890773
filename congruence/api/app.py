"""The FastAPI application: routers, error answers, limits. ``create_app`` builds one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from congruence.api.routes import (
    accounts,
    explain,
    exports,
    health,
    influencers,
    lists,
    match,
    pages,
    posts,
    score,
    searches,
)
from congruence.api.services import Services
from congruence.api.uploads import BodyLimit
from congruence.core.errors import (
    Busy,
    Conflict,
    CongruenceError,
    ModelMismatch,
    NotFound,
    StoreUnavailable,
    TooLarge,
    UnsupportedMedia,
)
from congruence.core.settings import Settings

logger = logging.getLogger(__name__)

# most specific first: TooLarge and UnsupportedMedia are InvalidInput too
_STATUS: list[tuple[type[CongruenceError], int]] = [
    (NotFound, 404),
    (TooLarge, 413),
    (UnsupportedMedia, 415),
    (ModelMismatch, 409),
    (Conflict, 409),
    (Busy, 503),
    (StoreUnavailable, 503),
    (CongruenceError, 422),
]


def _status_of(exc: CongruenceError) -> int:
    return next(code for cls, code in _STATUS if isinstance(exc, cls))


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CongruenceError)
    code = _status_of(exc)
    headers = {"Retry-After": "5"} if code == 503 else None
    # the API names a parameter as the library does: the message starts with it, and "field" says which
    body = {"detail": str(exc)} | ({"field": exc.field} if exc.field else {})
    return JSONResponse(body, status_code=code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without echoing the input back: an input can be NaN (not JSON) or huge."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _bad_characters(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "input contains characters the database cannot store (such as NUL)"}, status_code=422
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database error on %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"}, status_code=503, headers={"Retry-After": "5"}
    )


WORKER_ENV = "CONGRUENCE_SERVE_WORKER"  # set by `serve --workers N` for its worker processes


def create_app(
    settings: Settings,
    auth: bool = True,
    services: Services | None = None,
    read_only: bool = False,
) -> FastAPI:
    """read_only: serve what writers published and never write (``Services``)."""
    services = services or Services(settings, auth=auth, read_only=read_only)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start()
        yield
        services.close()

    app = FastAPI(
        title="Congruence",
        version="1",
        lifespan=lifespan,
        description="Match brands with micro-influencers by visual congruence. Every /v1 route needs "
        "'Authorization: Bearer <key>' (keys: `congruence keys create NAME`) unless the "
        "server runs with --no-auth on loopback.",
    )
    app.state.services = services
    app.add_exception_handler(CongruenceError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(psycopg.DataError, _bad_characters)
    app.add_exception_handler(psycopg.OperationalError, _database_error)
    app.add_exception_handler(psycopg.InterfaceError, _database_error)
    for module in (health, match, influencers, accounts, lists, searches, posts, explain, exports, score, pages):
        app.include_router(module.router)
    static = resources.files("congruence.api").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(BodyLimit)
    return app


def worker_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N`` (uvicorn's factory): settings
    from the environment, auth and read-only as the parent process was told, and no
    publication at start-up (the parent published once)."""
    import json
    import os

    from congruence.core.settings import load_settings

    opts = json.loads(os.environ[WORKER_ENV])
    share_cores(int(opts["workers"]))
    settings = load_settings()
    services = Services(settings, auth=bool(opts["auth"]), read_only=bool(opts["read_only"]), publish=False)
    return create_app(settings, services=services)


def share_cores(workers: int) -> None:
    """Each of ``workers`` processes computes on its share of the cores (torch and FAISS
    would each start a thread per core in every process: oversubscribed under load)."""
    import os

    import faiss
    import torch

    n = max(1, (os.cpu_count() or 1) // workers)
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
