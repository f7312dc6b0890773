"""Campaign lists (docs/lists.md): create, read, add, change an entry (409 on a stale version,
with the current entry), remove, history, export, delete."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse

from congruence.api.deps import KeyDep, ServicesDep
from congruence.api.schemas_lists import (
    AddResponse,
    ConflictOut,
    EntriesAdd,
    EntryOut,
    EntryPatch,
    HistoryResponse,
    ListCreate,
    ListOut,
    ListResponse,
    ListsResponse,
    change_out,
    entry_out,
    list_out,
)
from congruence.api.services import Services
from congruence.core.errors import Conflict
from congruence.search.list_export import list_table as export_table
from congruence.search.list_export import to_bytes
from congruence.store import list_views, lists
from congruence.store.lists import Entry
from congruence.store.records import Store

router = APIRouter(tags=["lists"])
_MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def _actor(key: str | None) -> str:
    return f"key:{key}" if key else "api"


@contextmanager
def _store(services: Services, write: bool = False) -> Iterator[Store]:
    if write and services.read_only:
        raise HTTPException(403, "this server is read-only (serve --read-only): lists cannot be changed here")
    with services.pool().reading() as store:
        yield store


@router.get("/v1/lists", response_model=ListsResponse)
def all_lists(
    services: ServicesDep, _key: KeyDep, brand_id: Annotated[str | None, Query(max_length=1000)] = None
) -> ListsResponse:
    with _store(services) as store:
        rows = lists.all_lists(store, brand_id)
    return ListsResponse(data=[list_out(x) for x in rows], count=len(rows))


@router.post("/v1/lists", response_model=ListOut, status_code=201, responses={409: {"description": "name taken"}})
def create_list(req: ListCreate, services: ServicesDep, key: KeyDep) -> ListOut:
    with _store(services, write=True) as store:
        return list_out(lists.create_list(store, req.name, req.brand_id, _actor(key)))


@router.get("/v1/lists/{name}", response_model=ListResponse)
def get_list(name: str, services: ServicesDep, _key: KeyDep) -> ListResponse:
    with _store(services) as store:
        lst, rows = lists.get_list(store, name), lists.entries(store, name)
    return ListResponse(list=list_out(lst), data=[entry_out(e) for e in rows], count=len(rows))


@router.delete("/v1/lists/{name}", status_code=204)
def delete_list(name: str, services: ServicesDep, _key: KeyDep) -> Response:
    with _store(services, write=True) as store:
        lists.delete_list(store, name)
    return Response(status_code=204)


@router.post("/v1/lists/{name}/entries", response_model=AddResponse)
def add_entries(name: str, req: EntriesAdd, services: ServicesDep, key: KeyDep) -> AddResponse:
    with _store(services, write=True) as store:
        added, already = lists.add(store, name, req.influencer_ids, _actor(key), req.status, req.note)
    return AddResponse(added=added, already=already)


@router.patch(
    "/v1/lists/{name}/entries/{influencer_id:path}",
    response_model=EntryOut,
    responses={409: {"model": ConflictOut, "description": "a stale version: the entry changed since it was read"}},
)
def patch_entry(
    name: str, influencer_id: str, req: EntryPatch, services: ServicesDep, key: KeyDep
) -> EntryOut | JSONResponse:
    with _store(services, write=True) as store:
        try:
            e = lists.set_entry(store, name, influencer_id, _actor(key), req.status, req.note, req.version)
        except Conflict as c:
            if not isinstance(c.current, Entry):
                raise
            body = ConflictOut(detail=str(c), field=c.field or "version", current=entry_out(c.current))
            return JSONResponse(body.model_dump(mode="json"), status_code=409)
    return entry_out(e)


@router.delete("/v1/lists/{name}/entries/{influencer_id:path}", status_code=204)
def remove_entry(name: str, influencer_id: str, services: ServicesDep, key: KeyDep) -> Response:
    with _store(services, write=True) as store:
        lists.remove(store, name, [influencer_id], _actor(key))
    return Response(status_code=204)


@router.get("/v1/lists/{name}/history", response_model=HistoryResponse)
def history(
    name: str,
    services: ServicesDep,
    _key: KeyDep,
    influencer_id: Annotated[str | None, Query(max_length=1000, description="one entry's changes")] = None,
) -> HistoryResponse:
    with _store(services) as store:
        rows = list_views.history(store, name, influencer_id)
    return HistoryResponse(data=[change_out(c) for c in rows], count=len(rows))


@router.get(
    "/v1/lists/{name}/export", response_class=Response, responses={200: {"content": {m: {} for m in _MEDIA.values()}}}
)
def export_list(name: str, services: ServicesDep, _key: KeyDep, format: Literal["csv", "parquet"] = "csv") -> Response:
    with _store(services) as store:
        data = to_bytes(export_table(store, name), format)
    stem = re.sub(r"[^\w.-]+", "_", name, flags=re.ASCII).strip("._") or "list"
    headers = {"Content-Disposition": f'attachment; filename="{stem}.{format}"'}
    return Response(data, media_type=_MEDIA[format], headers=headers)
