"""Account metrics in PostgreSQL (table ``account_metrics``, migration 006): the inputs read
from the store, the results written back, one account's metrics read for display.

``recompute`` runs after every ingest (``congruence metrics`` runs it alone). Every account's
figures are recomputed (the authenticity signals compare each account with its peers, so one
new account can move another's flag), but a row is written only when it changed. The window
N (``--er-posts``) is kept in ``store_meta`` so that a later ingest uses the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from congruence.indexer.store import Store, row_hash
from congruence.indexer.metrics.compute import N_LAST, AccountArrays, Figures, PostArrays, check_n_last, figures
from congruence.indexer.metrics.signals import BAND_NAMES, SIGNALS, Flag, authenticity, follower_band

logger = logging.getLogger(__name__)
N_LAST_KEY = "metrics_last_n"
# carousel images after the first are rows of their own (formats.instaloader) but not posts
POSTS_SQL = ("SELECT account_id, extract(epoch FROM ts)::float8, likes, comments,"
             " CASE WHEN extra ? 'sponsored_unknown' THEN -1 WHEN sponsored THEN 1 ELSE 0 END, id"
             " FROM posts WHERE NOT (extra ? 'slide_of') ORDER BY account_id, id")


@dataclass(frozen=True)
class AccountMetrics:
    """One account's stored metrics (fractions, not percents; None when unknown)."""

    account_id: str
    last_n: int
    engagement_rate: float | None
    er_posts: int
    posts_per_week: float | None
    sponsored_share: float | None
    sponsored_ratio: float | None
    sponsored_posts: int
    organic_posts: int
    follower_band: str | None
    flags: tuple[Flag, ...] = ()

    def to_dict(self) -> dict[str, object]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("account_id", "flags")}
        return d | {"flags": [f.to_dict() for f in self.flags]}


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

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _nan(v: object) -> float:
    return float("nan") if v is None else float(v)  # type: ignore[arg-type]


def read_inputs(store: Store) -> tuple[AccountArrays, PostArrays]:
    """Every account and post (carousel images after the first left out) as arrays."""
    # a negative count stored as unknown comes back as its figure: counted as dirty, never a rate
    acc = store.conn.execute("SELECT id, kind, category, COALESCE(followers, (extra->>'followers_reported')::float8)"
                             " FROM accounts ORDER BY id").fetchall()
    row_of = {r[0]: i for i, r in enumerate(acc)}
    accounts = AccountArrays([r[0] for r in acc], [r[1] for r in acc], [r[2] for r in acc],
                             np.array([_nan(r[3]) for r in acc], np.float64))
    rows = store.conn.execute(POSTS_SQL).fetchall()
    posts = PostArrays(np.fromiter((row_of[r[0]] for r in rows), np.int64, count=len(rows)),
                       np.array([_nan(r[1]) for r in rows], np.float64),
                       np.array([_nan(r[2]) for r in rows], np.float64),
                       np.array([_nan(r[3]) for r in rows], np.float64),
                       np.array([r[4] for r in rows], np.int8), [r[5] for r in rows])
    return accounts, posts


def dirty_counts(accounts: AccountArrays, posts: PostArrays) -> dict[str, int]:
    f = accounts.followers
    return {"accounts_followers_missing": int(np.isnan(f).sum()), "accounts_followers_zero": int((f == 0).sum()),
            "accounts_followers_negative": int((f < 0).sum()), "posts_likes_missing": int(np.isnan(posts.likes).sum()),
            "posts_comments_missing": int(np.isnan(posts.comments).sum()),
            "posts_likes_negative": int((posts.likes < 0).sum()),
            "posts_comments_negative": int((posts.comments < 0).sum()),
            "posts_time_missing": int(np.isnan(posts.ts).sum()),
            "posts_sponsorship_unknown": int((posts.sponsored < 0).sum())}


def _clean(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _rows(accounts: AccountArrays, figs: Figures, flags: list[list[Flag]], n_last: int) -> list[tuple]:
    band = follower_band(accounts.followers)
    out = []
    for i, aid in enumerate(accounts.ids):
        vals = (n_last, _clean(figs.er[i]), int(figs.er_posts[i]), _clean(figs.posts_per_week[i]),
                _clean(figs.sponsored_share[i]), _clean(figs.sponsored_ratio[i]), int(figs.sponsored_posts[i]),
                int(figs.organic_posts[i]), BAND_NAMES[band[i]] if band[i] >= 0 else None,
                json.dumps([f.to_dict() for f in flags[i]]))
        out.append((aid, *vals, row_hash(list(vals))))
    return out


def write(store: Store, rows: Sequence[tuple]) -> int:
    """Upsert the rows that changed (one transaction; bumps the store's generation when any
    did, so serving processes reload); returns how many."""
    if not rows:
        return 0
    cols = [list(c) for c in zip(*rows, strict=True)]
    with store.conn.transaction():
        out = store.conn.execute(
            "INSERT INTO account_metrics (account_id, last_n, engagement_rate, er_posts, posts_per_week,"
            " sponsored_share, sponsored_ratio, sponsored_posts, organic_posts, follower_band, flags, row_hash)"
            " SELECT * FROM unnest(%s::text[], %s::int[], %s::float8[], %s::int[], %s::float8[], %s::float8[],"
            " %s::float8[], %s::int[], %s::int[], %s::text[], %s::jsonb[], %s::text[])"
            " ON CONFLICT (account_id) DO UPDATE SET last_n = EXCLUDED.last_n,"
            " engagement_rate = EXCLUDED.engagement_rate, er_posts = EXCLUDED.er_posts,"
            " posts_per_week = EXCLUDED.posts_per_week, sponsored_share = EXCLUDED.sponsored_share,"
            " sponsored_ratio = EXCLUDED.sponsored_ratio, sponsored_posts = EXCLUDED.sponsored_posts,"
            " organic_posts = EXCLUDED.organic_posts, follower_band = EXCLUDED.follower_band,"
            " flags = EXCLUDED.flags, row_hash = EXCLUDED.row_hash, computed_at = now()"
            " WHERE account_metrics.row_hash <> EXCLUDED.row_hash RETURNING 1", cols).fetchall()
        if out:
            store.bump_generation()
    return len(out)


def last_n(store: Store, n_last: int | None = None) -> int:
    """The window to use: ``n_last`` (remembered for later runs), else the one remembered, else N_LAST."""
    if n_last is not None:
        store.set_meta(N_LAST_KEY, str(check_n_last(n_last)))
        return n_last
    stored = store.meta().get(N_LAST_KEY)
    return int(stored) if stored else N_LAST


def recompute(store: Store, n_last: int | None = None) -> MetricsReport:
    """Recompute every account's metrics and write those that changed."""
    n = last_n(store, n_last)
    accounts, posts = read_inputs(store)
    figs = figures(accounts, posts, n)
    flags = authenticity(accounts, posts, figs.er, n)
    changed = write(store, _rows(accounts, figs, flags, n))
    flagged = {s: sum(1 for fl in flags if any(f.signal == s for f in fl)) for s in SIGNALS}
    logger.info("account metrics: %d accounts, %d changed", len(accounts.ids), changed)
    return MetricsReport(len(accounts.ids), changed, n, int(np.isfinite(figs.er).sum()), flagged,
                         dirty_counts(accounts, posts))


def _metrics(row: tuple) -> AccountMetrics:
    flags = tuple(Flag(**f) for f in (row[10] or []))
    return AccountMetrics(row[0], int(row[1]), row[2], int(row[3]), row[4], row[5], row[6], int(row[7]),
                          int(row[8]), row[9], flags)


def read(store: Store, ids: Sequence[str]) -> dict[str, AccountMetrics]:
    """Account id -> its stored metrics, for the ids that have them."""
    rows = store.conn.execute(
        "SELECT account_id, last_n, engagement_rate, er_posts, posts_per_week, sponsored_share, sponsored_ratio,"
        " sponsored_posts, organic_posts, follower_band, flags FROM account_metrics WHERE account_id = ANY(%s)",
        (list(ids),)).fetchall()
    return {r[0]: _metrics(r) for r in rows}
