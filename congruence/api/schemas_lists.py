"""The HTTP API's campaign lists (docs/lists.md): requests, items, responses."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from congruence.store.list_views import Change
from congruence.store.lists import MAX_IDS, MAX_NAME, MAX_NOTE, CampaignList, Entry

Status = Literal["prospect", "contacted", "agreed", "declined", "posted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListCreate(_Strict):
    name: str = Field(..., min_length=1, max_length=MAX_NAME, description="unique; no '/'")
    brand_id: str = Field(..., min_length=1, max_length=1000, description="a brand of the corpus")


class EntriesAdd(_Strict):
    influencer_ids: list[str] = Field(..., min_length=1, max_length=MAX_IDS)
    status: Status = "prospect"
    note: str = Field("", max_length=MAX_NOTE)


class EntryPatch(_Strict):
    status: Status | None = None
    note: str | None = Field(None, max_length=MAX_NOTE)
    version: int | None = Field(
        None, ge=1, description="the version you read: a stale one gets 409 with the current entry"
    )


class ListOut(BaseModel):
    name: str
    brand_id: str
    created_by: str
    created_at: datetime
    entries: int


class OtherListOut(BaseModel):
    list: str
    status: Status


class EntryOut(BaseModel):
    influencer_id: str
    handle: str | None = Field(..., description="None when the account was deleted (gone)")
    status: Status
    note: str
    version: int = Field(..., description="bumped by every change of status or note")
    added_at: datetime
    updated_at: datetime
    updated_by: str
    gone: bool = Field(..., description="the account was deleted since it was added; the entry stays")
    gone_at: datetime | None
    other_lists: list[OtherListOut] = Field(..., description="the brand's other lists holding this influencer")


class ListResponse(BaseModel):
    list: ListOut
    data: builtins.list[EntryOut]  # the field above shadows the builtin here
    count: int


class ListsResponse(BaseModel):
    data: list[ListOut]
    count: int


class AddResponse(BaseModel):
    added: list[str]
    already: list[str] = Field(..., description="already in the list: left as they were")


class ChangeOut(BaseModel):
    influencer_id: str
    action: Literal["add", "set", "remove", "gone", "back"]
    actor: str
    old_status: str | None
    new_status: str | None
    old_note: str | None
    new_note: str | None
    version: int | None
    at: datetime


class HistoryResponse(BaseModel):
    data: list[ChangeOut]
    count: int


class ConflictOut(BaseModel):
    detail: str
    field: str
    current: EntryOut


def list_out(lst: CampaignList) -> ListOut:
    return ListOut(**lst.to_dict())


def entry_out(e: Entry) -> EntryOut:
    return EntryOut(**e.to_dict())


def change_out(c: Change) -> ChangeOut:
    return ChangeOut(**c.__dict__)
