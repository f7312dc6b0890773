"""The HTTP API's collaboration graph: the edges an account's view lists (docs/collaborations.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from congruence.store.rows import Collaboration


class CollaborationOut(BaseModel):
    """One edge: ``account_id``'s posts name ``handle`` as ``kind`` (or it is a known match of
    that brand); ``target_id``: the account the handle is."""

    account_id: str = Field(..., description="the account whose posts name the handle (for a match: the influencer)")
    kind: Literal["tag", "sponsor", "mention", "match"] = Field(
        ..., description="tagged, named as the sponsor of a paid partnership, an @mention, or a known match"
    )
    handle: str = Field(..., description="the handle named, in its normal form")
    posts: int = Field(..., description="posts naming the handle that way (0 for a known match)")
    sponsored_posts: int = Field(..., description="of those, the sponsored ones (paid partnerships)")
    first_at: datetime | None = Field(..., description="the first of those posts (None: none is dated)")
    last_at: datetime | None = Field(..., description="the last of those posts (None: none is dated)")
    target_id: str | None = Field(..., description="the account of the store the handle is (None: none, or several)")


def collaborations_out(edges: tuple[Collaboration, ...]) -> list[CollaborationOut]:
    return [CollaborationOut(**e.__dict__) for e in edges]
