"""The safety screen as search reads it: per influencer of a snapshot's table and per
category, how recent its newest flagged post is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.safety.categories import NAMES
from congruence.store import flags as flag_store
from congruence.store.records import Store
from congruence.store.rows import AccountTable


@dataclass(frozen=True)
class SafetyIndex:
    """newest: (n accounts, len(NAMES)) int32, aligned with the snapshot's influencer table:
    the position of the account's newest flagged post of each category among its posts,
    newest first (0: its newest post; ``flag_store.NONE_FLAGGED``: none); version: the
    screen's (``screen.screen_version``)."""

    newest: np.ndarray
    version: str

    def passing(self, categories: Sequence[str], last: int) -> np.ndarray:
        """(n,) bool: accounts with no post flagged in ``categories`` among their newest ``last``."""
        cols = [NAMES.index(c) for c in categories]
        if not cols:
            return np.ones(len(self.newest), bool)
        return np.asarray(self.newest[:, cols].min(axis=1) >= last)


def load_safety(store: Store, table: AccountTable, version: str) -> SafetyIndex:
    """The screen's view of ``table`` (read once per snapshot; only flagged accounts are read)."""
    return SafetyIndex(flag_store.newest_flagged(store, table, NAMES), version)


def check_screened(store: Store, version: str) -> None:
    """InvalidInput while influencer posts wait for the screen (new, changed, or screened by
    an older version): a brand-safety filter does not guess about them. A count over every
    post, so callers run it once per snapshot, and only for a brand-safety filter."""
    waiting = flag_store.waiting(store, version)
    if waiting:
        raise InvalidInput(
            f"{waiting} influencer posts have not been screened for brand safety yet: run `congruence screen`"
        )
