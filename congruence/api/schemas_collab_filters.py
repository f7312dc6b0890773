"""The HTTP API's collaboration filters (docs/collaborations.md, "Filters"): the request fields
of match, similar and export, checked again by ``Filters.make``."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from congruence.search.collab_filters import MAX_HANDLE_CHARS, MAX_HANDLES

_HANDLES = f"(a list, or handles separated by commas; at most {MAX_HANDLES}, {MAX_HANDLE_CHARS} characters each)"


class CollabFilterFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worked_with: list[str] = Field(
        [],
        max_length=MAX_HANDLES,
        description="only creators who tagged, were sponsored by or are a known match of any of these handles "
        + _HANDLES,
    )
    not_worked_with: list[str] = Field(
        [],
        max_length=MAX_HANDLES,
        description="leave out creators who tagged, were sponsored by or are a known match of any of these "
        "handles (exclusivity) " + _HANDLES,
    )
    since: date | None = Field(
        None,
        description="with not_worked_with: leave out only those whose tag or sponsorship of such a handle is "
        "on or after this day (a known match always counts)",
    )

    @field_validator("worked_with", "not_worked_with", mode="before")
    @classmethod
    def _handles_comma_separated(
        cls, v: object
    ) -> object:  # a form field carries one string (the name: not FilterFields')
        return [p for p in v.split(",") if p.strip()] if isinstance(v, str) else v
