"""The HTTP API's saved searches (docs/saved-searches.md): requests, items, responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from congruence.api.schemas import MatchHit, MatchRequest, MatchResponse
from congruence.store.lists import MAX_NAME
from congruence.store.saved_searches import Run, SavedSearch


class SearchCreate(MatchRequest):
    """A match request (a brand_id, or the query_id of a new brand's multipart search, whose
    vectors are then kept with the search) under a name."""

    name: str = Field(
        ..., min_length=1, max_length=MAX_NAME, description="unique; no '/', not '.' or '..', no space at either end"
    )
    replace: bool = Field(False, description="replace a saved search of this name (its runs go); else 409")
    update: bool = Field(False, description="change the options of the saved search of this name (its runs stay)")


class RunOut(BaseModel):
    ran_at: datetime
    count: int
    max_seq: int = Field(..., description="the newest influencer seq when it ran: those above came later")
    generation: int | None
    space: str = Field(..., description="the space that ranked it: pooled, or head:<version>")
    options_hash: str = Field(..., description="of the options it ran with: another means the search was updated")
    influencer_ids: list[str] = Field(..., description="in rank order")


class SearchOut(BaseModel):
    name: str
    brand_id: str | None = Field(..., description="None: a new brand, whose query vectors are kept")
    new_brand: bool
    options: dict[str, Any] = Field(
        ..., description="version, k, posts, signals, filters and feedback, as given (resolved when it runs)"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime | None
    runs: int
    last_run_at: datetime | None


class SearchDetail(SearchOut):
    recent_runs: list[RunOut] = Field(..., description="the newest runs (at most 20), newest first")


class SearchesResponse(BaseModel):
    data: list[SearchOut]
    count: int


class SearchHit(MatchHit):
    new: bool = Field(..., description="not in the previous run of this search")
    new_reason: Literal["newly ingested", "moved in"] | None = Field(
        ...,
        description="newly ingested: the account came after the previous run; moved in: it was there, not in the top k",
    )


class SearchRunResponse(MatchResponse):
    data: list[SearchHit]  # type: ignore[assignment]
    name: str
    gone: list[str] = Field(..., description="influencers of the previous run deleted from the store since")
    previous_run: RunOut | None = Field(..., description="the run compared with (None: the first run)")
    recorded: bool = Field(..., description="kept for the next run to compare with (not on a read-only server)")


def run_out(r: Run) -> RunOut:
    return RunOut(**r.to_dict())


def search_out(s: SavedSearch) -> SearchOut:
    return SearchOut(**s.to_dict())
