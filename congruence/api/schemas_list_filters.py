"""The HTTP API's campaign-list filters (docs/lists.md): the request fields of match, similar and
export, checked again by ``Filters.make``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from congruence.store.lists import MAX_NAME

Status = Literal["prospect", "contacted", "agreed", "declined", "posted"]


class ListFilterFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exclude_list: str | None = Field(
        None, min_length=1, max_length=MAX_NAME, description="leave out the influencers of this campaign list"
    )
    exclude_status: list[Status] = Field(
        [],
        max_length=5,
        description="with exclude_list: leave out only its influencers with these statuses (a list, or statuses "
        "separated by commas)",
    )

    @field_validator("exclude_status", mode="before")
    @classmethod
    def _statuses_comma_separated(cls, v: object) -> object:  # a form field carries one string
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v
