"""The safety screen's SQL: posts waiting for it, their flags, and per-account views.

Tables ``post_screens`` and ``post_flags`` (migration 005). A post is waiting when it has
no screen row, or one from another version of the screen, or one for other content (its
caption or image changed since).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.store.records import Store
from congruence.store.rows import AccountTable

NONE_FLAGGED = np.iinfo(np.int32).max  # "no flagged post" in SafetyIndex.newest
_CONTENT = "coalesce(p.caption_hash, '') || ':' || coalesce(p.image_hash, '')"


@dataclass(frozen=True)
class Pending:
    """A post to screen: its id, caption, content hashes and the content key screened."""

    post_id: str
    caption: str
    caption_hash: str | None
    image_hash: str | None
    content: str


@dataclass(frozen=True)
class Flag:
    """One reason a post is flagged: category (``safety.categories.NAMES``), source ('words',
    'caption' or 'image'), evidence (the word, the category description the caption is close
    to, or the ImageNet class) and score (1 for a word, the cosine or the class probability)."""

    post_id: str
    category: str
    source: str
    evidence: str
    score: float


def pending(store: Store, screen: str, after: str, limit: int) -> list[Pending]:
    """Up to ``limit`` posts waiting for screen version ``screen``, ids above ``after``, by id."""
    rows = store.conn.execute(
        f"SELECT p.id, p.caption, p.caption_hash, p.image_hash, {_CONTENT} FROM posts p"
        " LEFT JOIN post_screens s ON s.post_id = p.id"
        f" WHERE p.id > %s AND (s.post_id IS NULL OR s.screen <> %s OR s.content <> {_CONTENT})"
        " ORDER BY p.id LIMIT %s",
        (after, screen, limit),
    ).fetchall()
    return [Pending(*r) for r in rows]


def write(store: Store, screened: Sequence[Pending], flags: Sequence[Flag], screen: str) -> None:
    """Replace the flags of the ``screened`` posts and record them as screened, in one
    transaction; queries see the change (the store's generation moves)."""
    ids = [p.post_id for p in screened]
    with store.conn.transaction(), store.conn.cursor() as cur:
        cur.execute("DELETE FROM post_flags WHERE post_id = ANY(%s)", (ids,))
        cur.executemany(
            "INSERT INTO post_flags (post_id, category, source, evidence, score)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(f.post_id, f.category, f.source, f.evidence[:500], f.score) for f in flags],
        )
        cur.executemany(
            "INSERT INTO post_screens (post_id, content, screen) VALUES (%s, %s, %s)"
            " ON CONFLICT (post_id) DO UPDATE SET content = EXCLUDED.content,"
            " screen = EXCLUDED.screen, screened_at = now()",
            [(p.post_id, p.content, screen) for p in screened],
        )
        store.bump_generation()


def totals(store: Store, screen: str) -> tuple[int, int, dict[str, int]]:
    """(posts screened, posts flagged, flagged posts per category) over the whole store (brands'
    posts too), as screen version ``screen`` left them."""
    screened = store.conn.execute("SELECT count(*) FROM post_screens WHERE screen = %s", (screen,)).fetchone()
    flagged = store.conn.execute(
        "SELECT count(DISTINCT f.post_id) FROM post_flags f JOIN post_screens s"
        " ON s.post_id = f.post_id WHERE s.screen = %s",
        (screen,),
    ).fetchone()
    per = store.conn.execute(
        "SELECT f.category, count(DISTINCT f.post_id) FROM post_flags f JOIN post_screens s"
        " ON s.post_id = f.post_id WHERE s.screen = %s GROUP BY 1 ORDER BY 1",
        (screen,),
    ).fetchall()
    return (int(screened[0]) if screened else 0, int(flagged[0]) if flagged else 0, {c: int(n) for c, n in per})


def waiting(store: Store, screen: str, kind: str = "influencer") -> int:
    """How many posts of ``kind`` accounts wait for screen version ``screen``."""
    row = store.conn.execute(
        "SELECT count(*) FROM posts p JOIN accounts a ON a.id = p.account_id"
        " LEFT JOIN post_screens s ON s.post_id = p.id"
        f" WHERE a.kind = %s AND (s.post_id IS NULL OR s.screen <> %s OR s.content <> {_CONTENT})",
        (kind, screen),
    ).fetchone()
    return int(row[0]) if row else 0


def newest_flagged(store: Store, table: AccountTable, categories: Sequence[str]) -> np.ndarray:
    """(len(table), len(categories)) int32: per account of ``table`` and category, the position of
    its newest flagged post among its posts newest first (0: the newest post), or
    ``NONE_FLAGGED``. Only accounts with a flag are read."""
    out = np.full((len(table.seq), len(categories)), NONE_FLAGGED, np.int32)
    rows = store.conn.execute(
        "WITH flagged AS (SELECT DISTINCT p.account_id FROM post_flags f JOIN posts p ON p.id = f.post_id),"
        " ranked AS (SELECT p.id, p.account_id, row_number() OVER (PARTITION BY p.account_id"
        "   ORDER BY p.ts DESC NULLS LAST, p.id DESC) - 1 AS pos FROM posts p JOIN flagged USING (account_id))"
        " SELECT a.seq, f.category, min(r.pos) FROM ranked r JOIN post_flags f ON f.post_id = r.id"
        " JOIN accounts a ON a.id = r.account_id GROUP BY a.seq, f.category"
    ).fetchall()
    if not rows:
        return out
    row_of = {int(s): i for i, s in enumerate(table.seq)}
    col_of = {n: j for j, n in enumerate(categories)}
    for seq, cat, pos in rows:
        i, j = row_of.get(int(seq)), col_of.get(cat)
        if i is not None and j is not None:
            out[i, j] = int(pos)
    return out


@dataclass(frozen=True)
class AccountSafety:
    """An account's screen: posts screened, posts flagged, their share, and its flags (the
    newest posts' first, at most the number asked for)."""

    screened: int
    flagged: int
    flags: tuple[Flag, ...]

    @property
    def share(self) -> float:
        return self.flagged / self.screened if self.screened else 0.0


def accounts(store: Store, ids: Sequence[str], max_flags: int = 10) -> dict[str, AccountSafety]:
    """Account id -> its screen, for the ids with at least one screened post."""
    counts = store.conn.execute(
        "SELECT p.account_id, count(DISTINCT s.post_id), count(DISTINCT f.post_id) FROM posts p"
        " JOIN post_screens s ON s.post_id = p.id LEFT JOIN post_flags f ON f.post_id = p.id"
        " WHERE p.account_id = ANY(%s) GROUP BY 1",
        (list(ids),),
    ).fetchall()
    flags: dict[str, list[Flag]] = {}
    for aid, pid, cat, src, ev, sc in store.conn.execute(
        "SELECT p.account_id, f.post_id, f.category, f.source, f.evidence, f.score FROM post_flags f"
        " JOIN posts p ON p.id = f.post_id WHERE p.account_id = ANY(%s)"
        " ORDER BY p.account_id, p.ts DESC NULLS LAST, p.id DESC, f.category, f.source, f.evidence",
        (list(ids),),
    ):
        got = flags.setdefault(aid, [])
        if len(got) < max_flags:
            got.append(Flag(pid, cat, src, ev, float(sc)))
    return {aid: AccountSafety(int(n), int(nf), tuple(flags.get(aid, ()))) for aid, n, nf in counts}


def vectors_by_hash(store: Store, model_id: int, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """Content hash -> the stored (L2-normalised) embedding of model ``model_id``, for those encoded."""
    if not hashes:
        return {}
    with store.conn.cursor(binary=True) as cur:
        rows = cur.execute(
            "SELECT content_hash, embedding FROM vectors WHERE model_id = %s AND content_hash = ANY(%s)",
            (model_id, list(set(hashes))),
        ).fetchall()
    return {h: np.asarray(v.to_numpy(), np.float32) for h, v in rows}
