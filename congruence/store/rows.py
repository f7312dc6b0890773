"""The rows that cross between the store and its callers: frozen, typed, one place.

``Account``, ``Match`` and ``StoredPost`` go in (an ingest writes them); the rest come out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from congruence.store.columns import CodeColumn

Kind = Literal["brand", "influencer"]


@dataclass(frozen=True)
class Account:
    id: str
    kind: str
    handle: str
    category: str
    followers: int | None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Match:
    brand_id: str
    influencer_id: str


@dataclass(frozen=True)
class StoredPost:
    """A validated post ready to store: image path relative to ``corpus_root``, hashes."""

    id: str
    account_id: str
    image: str | None
    image_hash: str | None
    caption: str
    caption_hash: str | None
    likes: int | None
    comments: int | None
    ts: Any
    sponsored: bool
    tagged: tuple[str, ...]
    extra: dict[str, Any]
    row_hash: str
    corpus_root: str


@dataclass(frozen=True)
class AccountTable:
    """Columns of the accounts of one kind, aligned by position; seq is the FAISS label."""

    seq: np.ndarray  # (n,) int64
    ids: Sequence[str]
    handles: Sequence[str]
    categories: Sequence[str]
    followers: np.ndarray  # (n,) int64, -1 when unknown

    @functools.cached_property
    def category_codes(self) -> tuple[np.ndarray, dict[str, int]]:
        """((n,) int32 code of each row's category, {category: code}): built once per table,
        so a category filter is one numpy comparison instead of a Python loop per query."""
        if isinstance(self.categories, CodeColumn):
            return self.categories.codes, {c: i for i, c in enumerate(self.categories.names)}
        index: dict[str, int] = {}
        codes = np.fromiter(
            (index.setdefault(c, len(index)) for c in self.categories), np.int32, count=len(self.categories)
        )
        return codes, index


@dataclass(frozen=True)
class AccountRow:
    """One stored account; ``followers`` None when unknown, ``posts``: how many it has."""

    id: str
    kind: Kind
    handle: str
    category: str
    followers: int | None
    extra: dict[str, Any]
    posts: int


@dataclass(frozen=True)
class PostRow:
    """One stored post; ``image`` relative to ``corpus_root``, None for a text-only post;
    ``likes`` and ``sponsored`` None when unknown."""

    id: str
    account_id: str
    image: str | None
    image_hash: str | None
    caption: str
    corpus_root: str
    likes: int | None
    sponsored: bool | None


@dataclass(frozen=True)
class PostBrief:
    """What an account's page lists of one of its posts."""

    id: str
    caption: str
    likes: int | None
    has_image: bool


@dataclass(frozen=True)
class Collaboration:
    """One edge of the collaboration graph: ``account_id`` named ``handle`` (in its normal form)
    as ``kind`` ('tag', 'sponsor' of a paid partnership, caption 'mention') in ``posts`` of its
    posts, ``sponsored_posts`` of them sponsored, the first and last at ``first_at`` and
    ``last_at`` (None when none is dated); ``target_id``: the account of the store the handle is,
    None when none (or several) is. Kind 'match': a known match, the brand as ``target_id``, no
    posts counted."""

    account_id: str
    kind: str
    handle: str
    posts: int
    sponsored_posts: int
    first_at: datetime | None
    last_at: datetime | None
    target_id: str | None


@dataclass(frozen=True)
class Counts:
    """How many accounts of each kind, posts and known matches the store holds."""

    brands: int
    influencers: int
    posts: int
    matches: int

    def to_dict(self) -> dict[str, object]:
        return {
            "accounts": {"brand": self.brands, "influencer": self.influencers},
            "posts": self.posts,
            "matches": self.matches,
        }
