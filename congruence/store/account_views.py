"""What the account view plots: an account's likes over time, and the engagement rate against
followers of the accounts of its kind and category."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from congruence.store.records import Store

MAX_POINTS = 500
MAX_PEERS = 2000


@dataclass(frozen=True)
class PostPoint:
    post_id: str
    ts: datetime | None
    likes: int | None
    comments: int | None
    sponsored: bool | None  # None: unknown


@dataclass(frozen=True)
class PeerPoint:
    account_id: str
    followers: int
    engagement_rate: float


def post_points(store: Store, account_id: str, limit: int = MAX_POINTS) -> list[PostPoint]:
    """The account's newest ``limit`` posts (carousel images after the first left out), oldest first."""
    rows = store.conn.execute(
        "SELECT id, ts, likes, comments, CASE WHEN extra ? 'sponsored_unknown' THEN NULL ELSE sponsored END"
        " FROM posts WHERE account_id = %s AND NOT (extra ? 'slide_of')"
        " ORDER BY ts DESC NULLS LAST, id DESC LIMIT %s",
        (account_id, limit),
    ).fetchall()
    return [PostPoint(*r) for r in reversed(rows)]


def peer_points(store: Store, account_id: str, limit: int = MAX_PEERS) -> tuple[list[PeerPoint], int]:
    """(up to ``limit`` accounts of the same kind and category with an engagement rate, a fixed
    pseudo-random sample when there are more, the account itself always in; how many there are)."""
    where = (
        "FROM account_metrics m JOIN accounts a ON a.id = m.account_id"
        " JOIN accounts me ON me.id = %s AND me.kind = a.kind AND me.category = a.category"
        " WHERE m.engagement_rate IS NOT NULL AND a.followers > 0"
    )
    total = store.conn.execute(f"SELECT count(*) {where}", (account_id,)).fetchone()
    rows = store.conn.execute(
        f"SELECT a.id, a.followers, m.engagement_rate {where} ORDER BY (a.id = %s) DESC, md5(a.id) LIMIT %s",
        (account_id, account_id, limit),
    ).fetchall()
    return [PeerPoint(r[0], int(r[1]), float(r[2])) for r in rows], int(total[0]) if total else 0
