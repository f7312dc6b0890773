"""Saved searches (docs/saved-searches.md): create (409 when the name is taken), list, get,
run (each hit marked new or not against the previous run, the gone named), delete."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from congruence.api.deps import EngineDep, KeyDep, ServicesDep
from congruence.api.params import feedback_of, filters_of, ranking_text, signals_text
from congruence.api.schemas_searches import (
    SearchCreate,
    SearchDetail,
    SearchesResponse,
    SearchHit,
    SearchOut,
    SearchRunResponse,
    run_out,
    search_out,
)
from congruence.api.services import Services
from congruence.api.views import in_query_thread, match_response
from congruence.core.errors import Conflict, InvalidInput
from congruence.search.engine import Engine
from congruence.search.saved_searches import SearchSpec, run_search, save_search
from congruence.store import saved_searches
from congruence.store.saved_searches import Mode

router = APIRouter(tags=["searches"])


def _writable(services: Services) -> None:
    if services.read_only:
        raise HTTPException(403, "this server is read-only (serve --read-only): saved searches cannot be changed here")


@router.get("/v1/searches", response_model=SearchesResponse)
def all_searches(services: ServicesDep, _key: KeyDep) -> SearchesResponse:
    with services.pool().reading() as store:
        rows = saved_searches.all_searches(store)
    return SearchesResponse(data=[search_out(s) for s in rows], count=len(rows))


@router.post(
    "/v1/searches",
    response_model=SearchOut,
    status_code=201,
    responses={
        200: {"description": "updated in place (update: true)"},
        409: {"description": "name taken (send replace: true, or update: true)"},
    },
    summary="Save a match under a name (checked by running it once)",
)
async def create_search(
    req: SearchCreate, response: Response, engine: EngineDep, services: ServicesDep, key: KeyDep
) -> SearchOut:
    _writable(services)
    if req.replace and req.update:
        raise InvalidInput('send "replace": true or "update": true, not both', field="update")
    filters, feedback = filters_of(req), feedback_of(req)  # match's checks, match's messages
    spec = SearchSpec.typed(req.brand_id, req, req.k, req.signals, req.posts).same_as(filters, feedback)
    query = services.queries.get(req.query_id) if req.query_id is not None else None
    actor = f"key:{key}" if key else "api"
    mode: Mode = "update" if req.update else "replace" if req.replace else "create"
    try:
        saved = await in_query_thread(save_search, engine, req.name, spec, query, actor, mode)
    except Conflict as e:
        hint = 'replace it ("replace": true), or update it and keep its runs ("update": true)'
        raise Conflict(f"{e.message}: {hint}") from e
    if mode == "update":
        response.status_code = 200
    return search_out(saved)


@router.get("/v1/searches/{name}", response_model=SearchDetail)
def get_search(name: str, services: ServicesDep, _key: KeyDep) -> SearchDetail:
    with services.pool().reading() as store:
        s = saved_searches.get(store, name)
        recent = saved_searches.runs(store, s.id)
    return SearchDetail(**s.to_dict(), recent_runs=[run_out(r) for r in recent])


def _run(engine: Engine, name: str, record: bool) -> SearchRunResponse:
    """One run, whole, in a worker thread: ranked, compared, recorded, decorated."""
    result = run_search(engine, name, record)
    snap, spec = result.snap, result.spec
    ranking = ranking_text(engine.ranking(snap), result.feedback, snap.head is not None) + signals_text(result.used)
    with engine.reading() as store:
        out = match_response(store, result.hits, ranking, None, spec.brand_id)
    data = [
        SearchHit(**h.model_dump(), new=new, new_reason=why)  # type: ignore[arg-type]
        for h, (new, why) in zip(out.data, result.marks, strict=True)
    ]
    return SearchRunResponse(
        data=data,
        count=len(data),
        ranking=ranking,
        query_id=None,
        generation=snap.generation,
        head=snap.head.version if snap.head else None,
        warnings=result.warnings,
        name=result.search.name,
        gone=result.gone,
        previous_run=run_out(result.previous) if result.previous else None,
        recorded=result.recorded is not None,
    )


@router.post("/v1/searches/{name}/run", response_model=SearchRunResponse, summary="Rerun a saved search")
async def run(name: str, engine: EngineDep, services: ServicesDep, _key: KeyDep) -> SearchRunResponse:
    return await in_query_thread(_run, engine, name, not services.read_only)


@router.delete("/v1/searches/{name}", status_code=204)
def delete_search(name: str, services: ServicesDep, _key: KeyDep) -> Response:
    _writable(services)
    with services.pool().reading() as store:
        saved_searches.delete(store, name)
    return Response(status_code=204)
