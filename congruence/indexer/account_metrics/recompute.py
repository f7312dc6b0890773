"""Recomputing every account's metrics after an ingest (``congruence metrics`` runs it alone).

Every account's figures are recomputed (the authenticity signals compare each account with its
peers, so one new account can move another's flag), but a row is written only when it changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np

from congruence.indexer.account_metrics.compute import N_LAST, Figures, check_n_last, figures
from congruence.indexer.account_metrics.growth import growth_monthly, growth_spike_flags
from congruence.indexer.account_metrics.signals import BAND_NAMES, SIGNALS, authenticity, follower_band
from congruence.store import account_metrics as stored
from congruence.store import follower_history
from congruence.store.account_metrics import AccountArrays, Flag, PostArrays
from congruence.store.records import Store, row_hash

logger = logging.getLogger(__name__)


@dataclass
class MetricsReport:
    """accounts: with metrics; changed: rows written; flagged: accounts per signal; dirty:
    values that made a figure unknown (missing or non-positive followers, missing counts or
    times, unknown sponsorship), counted."""

    accounts: int = 0
    changed: int = 0
    last_n: int = N_LAST
    with_er: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    dirty: dict[str, int] = field(default_factory=dict)
    with_growth: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def dirty_counts(accounts: AccountArrays, posts: PostArrays) -> dict[str, int]:
    f = accounts.followers
    return {
        "accounts_followers_missing": int(np.isnan(f).sum()),
        "accounts_followers_zero": int((f == 0).sum()),
        "accounts_followers_negative": int((f < 0).sum()),
        "posts_likes_missing": int(np.isnan(posts.likes).sum()),
        "posts_comments_missing": int(np.isnan(posts.comments).sum()),
        "posts_likes_negative": int((posts.likes < 0).sum()),
        "posts_comments_negative": int((posts.comments < 0).sum()),
        "posts_time_missing": int(np.isnan(posts.ts).sum()),
        "posts_sponsorship_unknown": int((posts.sponsored < 0).sum()),
    }


def _clean(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _rows(
    accounts: AccountArrays, figs: Figures, flags: list[list[Flag]], n_last: int, growth: np.ndarray, snaps: np.ndarray
) -> list[tuple]:
    band = follower_band(accounts.followers)
    out = []
    for i, aid in enumerate(accounts.ids):
        vals = (
            n_last,
            _clean(figs.er[i]),
            int(figs.er_posts[i]),
            _clean(figs.posts_per_week[i]),
            _clean(figs.sponsored_share[i]),
            _clean(figs.sponsored_ratio[i]),
            int(figs.sponsored_posts[i]),
            int(figs.organic_posts[i]),
            BAND_NAMES[band[i]] if band[i] >= 0 else None,
            json.dumps([f.to_dict() for f in flags[i]]),
            _clean(growth[i]),
            int(snaps[i]),
        )
        out.append((aid, *vals, row_hash(list(vals))))
    return out


def last_n(store: Store, n_last: int | None = None) -> int:
    """The window to use: ``n_last`` (remembered for later runs), else the one remembered, else N_LAST."""
    if n_last is not None:
        stored.remember_last_n(store, check_n_last(n_last))
        return n_last
    return stored.remembered_last_n(store) or N_LAST


def recompute(store: Store, n_last: int | None = None) -> MetricsReport:
    """Recompute every account's metrics and write those that changed."""
    n = last_n(store, n_last)
    accounts, posts = stored.read_inputs(store)
    figs = figures(accounts, posts, n)
    snapshots = follower_history.read_arrays(store, accounts.ids)
    growth, n_snaps = growth_monthly(len(accounts.ids), snapshots)
    spikes = growth_spike_flags(accounts, snapshots)
    flags = [a + b for a, b in zip(authenticity(accounts, posts, figs.er, n), spikes, strict=True)]
    changed = stored.write(store, _rows(accounts, figs, flags, n, growth, n_snaps))
    flagged = {s: sum(1 for fl in flags if any(f.signal == s for f in fl)) for s in SIGNALS}
    logger.info("account metrics: %d accounts, %d changed", len(accounts.ids), changed)
    return MetricsReport(
        len(accounts.ids),
        changed,
        n,
        int(np.isfinite(figs.er).sum()),
        flagged,
        dirty_counts(accounts, posts),
        int(np.isfinite(growth).sum()),
    )
