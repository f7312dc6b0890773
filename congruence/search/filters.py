"""Filters on influencers, checked once at the boundary and applied as a position mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.indexer.index import VectorIndex
from congruence.indexer.store import AccountTable

MICRO = (5_000, 100_000)


@dataclass(frozen=True)
class Filters:
    """category: exact (case-insensitive); followers bounds inclusive; None = no bound."""

    category: str | None = None
    min_followers: int | None = None
    max_followers: int | None = None

    @classmethod
    def make(cls, category: str | None = None, min_followers: int | None = None,
             max_followers: int | None = None, micro: bool = False) -> Filters:
        for name, v in (("min_followers", min_followers), ("max_followers", max_followers)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InvalidInput(f"{name} must be a non-negative whole number, got {v!r}")
        if min_followers is not None and max_followers is not None and min_followers > max_followers:
            raise InvalidInput(f"min_followers ({min_followers}) is greater than max_followers ({max_followers})")
        if micro:
            lo = MICRO[0] if min_followers is None else max(min_followers, MICRO[0])
            hi = MICRO[1] if max_followers is None else min(max_followers, MICRO[1])
            if lo > hi:
                given = " and ".join(f"{n} {v}" for n, v in (("min_followers", min_followers),
                                                                   ("max_followers", max_followers)) if v is not None)
                raise InvalidInput(f"micro-influencers have {MICRO[0]:,}-{MICRO[1]:,} followers: none can also "
                                   f"meet {given}")
            min_followers, max_followers = lo, hi
        cat = category.strip().lower() if category else None
        if cat is not None and len(cat) > 100:
            raise InvalidInput("category is longer than 100 characters")
        return cls(cat or None, min_followers, max_followers)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.category, self.min_followers, self.max_followers))

    def rows(self, table: AccountTable) -> np.ndarray:
        """Boolean mask over the table's rows that pass."""
        ok = np.ones(len(table.ids), bool)
        if self.category is not None:
            codes, index = table.category_codes
            code = index.get(self.category)
            ok &= codes == code if code is not None else False
        if self.min_followers is not None:
            ok &= table.followers >= self.min_followers
        if self.max_followers is not None:
            ok &= (table.followers <= self.max_followers) & (table.followers >= 0)
        return ok

    def mask(self, table: AccountTable, index: VectorIndex, exclude: np.ndarray | None = None) -> np.ndarray | None:
        """(ntotal,) mask over index positions, or None when nothing is filtered."""
        if not self.active and (exclude is None or len(exclude) == 0):
            return None
        mask = np.zeros(index.ntotal, bool)
        pos = index.positions(table.seq[self.rows(table)])
        mask[pos[pos >= 0]] = True
        if exclude is not None and len(exclude):
            ex = index.positions(exclude)
            mask[ex[ex >= 0]] = False
        return mask
