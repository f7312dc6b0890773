"""Account metrics in PostgreSQL (table ``account_metrics``, migration 006): the arrays the
figures are computed from, the rows written back, and one account's metrics read for display.

The computation lives in ``indexer.account_metrics``; this module holds its row types and SQL.
The window N (``--er-posts``) is kept in ``store_meta`` so that a later ingest uses the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from congruence.store.records import Store

N_LAST_KEY = "metrics_last_n"
# carousel images after the first are rows of their own (formats.instaloader) but not posts
POSTS_SQL = (
    "SELECT account_id, extract(epoch FROM ts)::float8, likes, comments,"
    " CASE WHEN extra ? 'sponsored_unknown' THEN -1 WHEN sponsored THEN 1 ELSE 0 END, id"
    " FROM posts WHERE NOT (extra ? 'slide_of') ORDER BY account_id, id"
)


@dataclass(frozen=True)
class AccountArrays:
    """ids, kinds, categories (n,) and followers (n,) float64, NaN when unknown (dirty values
    such as 0 or negative stay as they are: they make the engagement rate unknown)."""

    ids: Sequence[str]
    kinds: Sequence[str]
    categories: Sequence[str]
    followers: np.ndarray


@dataclass(frozen=True)
class PostArrays:
    """Posts, aligned: account (n,) int64 row in the ``AccountArrays``; ts (n,) float64 epoch
    seconds; likes, comments (n,) float64; NaN when unknown; sponsored (n,) int8: 1, 0, or -1
    when unknown; ids (n,) post ids."""

    account: np.ndarray
    ts: np.ndarray
    likes: np.ndarray
    comments: np.ndarray
    sponsored: np.ndarray
    ids: Sequence[str]


@dataclass(frozen=True)
class Flag:
    """signal (one of SIGNALS), value (the figure compared: a robust z, or a likes ratio),
    threshold (what it crossed), text (a sentence with the numbers), post_id (a spike's post)."""

    signal: str
    value: float
    threshold: float
    text: str
    post_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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
    growth_monthly: float | None = None
    follower_snapshots: int = 0

    def to_dict(self) -> dict[str, object]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("account_id", "flags")}
        return d | {"flags": [f.to_dict() for f in self.flags]}


def _nan(v: object) -> float:
    return float("nan") if v is None else float(v)  # type: ignore[arg-type]


def read_inputs(store: Store) -> tuple[AccountArrays, PostArrays]:
    """Every account and post (carousel images after the first left out) as arrays."""
    # a negative count stored as unknown comes back as its figure: counted as dirty, never a rate
    acc = store.conn.execute(
        "SELECT id, kind, category, COALESCE(followers, (extra->>'followers_reported')::float8)"
        " FROM accounts ORDER BY id"
    ).fetchall()
    row_of = {r[0]: i for i, r in enumerate(acc)}
    accounts = AccountArrays(
        [r[0] for r in acc], [r[1] for r in acc], [r[2] for r in acc], np.array([_nan(r[3]) for r in acc], np.float64)
    )
    rows = store.conn.execute(POSTS_SQL).fetchall()
    posts = PostArrays(
        np.fromiter((row_of[r[0]] for r in rows), np.int64, count=len(rows)),
        np.array([_nan(r[1]) for r in rows], np.float64),
        np.array([_nan(r[2]) for r in rows], np.float64),
        np.array([_nan(r[3]) for r in rows], np.float64),
        np.array([r[4] for r in rows], np.int8),
        [r[5] for r in rows],
    )
    return accounts, posts


def write(store: Store, rows: Sequence[tuple]) -> int:
    """Upsert the rows that changed (one transaction; bumps the store's generation when any
    did, so serving processes reload); returns how many."""
    if not rows:
        return 0
    cols = [list(c) for c in zip(*rows, strict=True)]
    with store.conn.transaction():
        out = store.conn.execute(
            "INSERT INTO account_metrics (account_id, last_n, engagement_rate, er_posts, posts_per_week,"
            " sponsored_share, sponsored_ratio, sponsored_posts, organic_posts, follower_band, flags,"
            " growth_monthly, follower_snapshots, row_hash)"
            " SELECT * FROM unnest(%s::text[], %s::int[], %s::float8[], %s::int[], %s::float8[], %s::float8[],"
            " %s::float8[], %s::int[], %s::int[], %s::text[], %s::jsonb[], %s::float8[], %s::int[], %s::text[])"
            " ON CONFLICT (account_id) DO UPDATE SET last_n = EXCLUDED.last_n,"
            " engagement_rate = EXCLUDED.engagement_rate, er_posts = EXCLUDED.er_posts,"
            " posts_per_week = EXCLUDED.posts_per_week, sponsored_share = EXCLUDED.sponsored_share,"
            " sponsored_ratio = EXCLUDED.sponsored_ratio, sponsored_posts = EXCLUDED.sponsored_posts,"
            " organic_posts = EXCLUDED.organic_posts, follower_band = EXCLUDED.follower_band,"
            " flags = EXCLUDED.flags, growth_monthly = EXCLUDED.growth_monthly,"
            " follower_snapshots = EXCLUDED.follower_snapshots, row_hash = EXCLUDED.row_hash, computed_at = now()"
            " WHERE account_metrics.row_hash <> EXCLUDED.row_hash RETURNING 1",
            cols,
        ).fetchall()
        if out:
            store.bump_generation()
    return len(out)


def remembered_last_n(store: Store) -> int | None:
    """The window a previous run remembered, if any."""
    stored = store.meta().get(N_LAST_KEY)
    return int(stored) if stored else None


def remember_last_n(store: Store, n_last: int) -> None:
    store.set_meta(N_LAST_KEY, str(n_last))


def _metrics(row: tuple) -> AccountMetrics:
    flags = tuple(Flag(**f) for f in (row[10] or []))
    return AccountMetrics(
        row[0],
        int(row[1]),
        row[2],
        int(row[3]),
        row[4],
        row[5],
        row[6],
        int(row[7]),
        int(row[8]),
        row[9],
        flags,
        row[11],
        int(row[12]),
    )


def read(store: Store, ids: Sequence[str]) -> dict[str, AccountMetrics]:
    """Account id -> its stored metrics, for the ids that have them."""
    rows = store.conn.execute(
        "SELECT account_id, last_n, engagement_rate, er_posts, posts_per_week, sponsored_share, sponsored_ratio,"
        " sponsored_posts, organic_posts, follower_band, flags, growth_monthly, follower_snapshots"
        " FROM account_metrics WHERE account_id = ANY(%s)",
        (list(ids),),
    ).fetchall()
    return {r[0]: _metrics(r) for r in rows}
