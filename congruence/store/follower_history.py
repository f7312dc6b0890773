"""Follower history in PostgreSQL (table ``follower_snapshots``, migration 009).

Each ingest that sees an account's follower count records it, dated by the account row's
``followers_at`` (parsed by ``indexer.corpus.parse_account``: a JSONL field or table column, or
an Instaloader profile file's date), else by the time of the ingest. A row is a *run* of one
count: first seen ``at``, last seen ``last_seen``. A count equal to the one seen just before its
date only moves that run's ``last_seen``, so re-ingesting the same files changes nothing and
a flat account keeps its figures current; a count at a date already held replaces it (a
corrected file). Counts are kept in date order whatever order the files come in, and the
account's ``followers`` is its newest count, never an older file's. Deleting an account
deletes its history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from congruence.store.records import Store
from congruence.store.rows import Account

FOLLOWERS_AT = "followers_at"  # the account row's extra field holding the count's date (ISO 8601)
FOLLOWERS_AT_SOURCE = "followers_at_source"  # 'file' or 'posts': set by the Instaloader reader only
MAX_SHOWN = 1000
_LOCK = 7_361_209  # advisory-lock key: one writer of the history at a time


@dataclass(frozen=True)
class Snapshot:
    """A run of one follower count: first seen ``at``, last seen ``last_seen`` (None: once)."""

    at: datetime
    followers: int
    source: str
    last_seen: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        last = self.last_seen.astimezone(UTC).isoformat() if self.last_seen is not None else None
        return {"followers": self.followers, "at": self.at.astimezone(UTC).isoformat(), "source": self.source} | {
            "last_seen": last
        }

    @property
    def seen(self) -> datetime:
        return self.last_seen or self.at


@dataclass(frozen=True)
class SnapshotArrays:
    """Every sighting of a count, by account then date (a run gives its first and last):
    account (n,) int64 row in the caller's id list, ts (n,) float64 epoch seconds, followers
    (n,) float64."""

    account: np.ndarray
    ts: np.ndarray
    followers: np.ndarray


def dated(a: Account) -> tuple[str, int, str | None, str] | None:
    """(id, followers, the count's date or None for the ingest's time, source) of an account
    whose follower count is known."""
    if a.followers is None:
        return None
    at = a.extra.get(FOLLOWERS_AT)
    if at is None:
        return a.id, a.followers, None, "ingest"
    source = a.extra.get(FOLLOWERS_AT_SOURCE)
    return a.id, a.followers, str(at), source if source in ("file", "posts") else "given"


def merge(runs: Sequence[Snapshot], at: datetime, followers: int, source: str) -> list[Snapshot]:
    """``runs`` (by date) with the count ``followers`` seen ``at``: the sightings (each run's
    first and last) plus this one, replacing one at the same date, as runs again."""
    points = {r.at: (r.followers, r.source) for r in runs}
    points |= {r.last_seen: (r.followers, r.source) for r in runs if r.last_seen is not None}
    points[at] = (followers, source)
    out: list[Snapshot] = []
    for t in sorted(points):
        f, src = points[t]
        if out and out[-1].followers == f:
            out[-1] = Snapshot(out[-1].at, f, out[-1].source, t)
        else:
            out.append(Snapshot(t, f, src))
    return out


def _counts(runs: Sequence[Snapshot]) -> list[tuple[datetime, int]]:
    return [(r.at, r.followers) for r in runs]


def record(store: Store, accounts: Sequence[Account]) -> int:
    """Record each account's follower count (one transaction); returns how many counts were new
    (a run started or a count changed, not a sighting of the same count). Accounts whose
    count was older than their newest get their newest back as ``followers``."""
    rows = {r[0]: r for r in map(dated, accounts) if r is not None}  # the last row of an id wins
    if not rows:
        return 0
    new = 0
    with store.conn.transaction():
        store.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        now = store.conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        held: dict[str, list[Snapshot]] = defaultdict(list)
        for aid, at, last, f, src in store.conn.execute(
            "SELECT account_id, at, last_seen, followers, source FROM follower_snapshots"
            " WHERE account_id = ANY(%s) ORDER BY account_id, at",
            (list(rows),),
        ):
            held[aid].append(Snapshot(at, int(f), src, last))
        gone: list[tuple[str, Snapshot]] = []  # runs to delete, then the runs to insert
        added: list[tuple[str, Snapshot]] = []
        newest: list[tuple[str, int]] = []
        for aid, followers, at, source in rows.values():
            before = held.get(aid, [])
            after = merge(before, datetime.fromisoformat(at) if at else now, followers, source)
            new += _counts(after) != _counts(before)
            gone += [(aid, r) for r in before if r not in after]
            added += [(aid, r) for r in after if r not in before]  # most often one run, or none
            latest = max(after, key=lambda r: r.seen).followers
            if latest != followers:
                newest.append((aid, latest))
        if gone:
            store.conn.execute(
                "DELETE FROM follower_snapshots s USING unnest(%s::text[], %s::timestamptz[]) AS u(a, t)"
                " WHERE s.account_id = u.a AND s.at = u.t",
                ([a for a, _ in gone], [r.at for _, r in gone]),
            )
        if added:
            store.conn.execute(
                "INSERT INTO follower_snapshots (account_id, at, last_seen, followers, source)"
                " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::text[])",
                (
                    [a for a, _ in added],
                    [r.at for _, r in added],
                    [r.last_seen for _, r in added],
                    [r.followers for _, r in added],
                    [r.source for _, r in added],
                ),
            )
        if newest:
            store.conn.execute(
                "UPDATE accounts SET followers = u.f FROM unnest(%s::text[], %s::bigint[]) AS u(a, f)"
                " WHERE accounts.id = u.a",
                ([a for a, _ in newest], [f for _, f in newest]),
            )
    return new


def history(store: Store, account_id: str, limit: int = MAX_SHOWN) -> list[Snapshot]:
    """The account's newest ``limit`` runs, oldest first."""
    rows = store.conn.execute(
        "SELECT at, followers, source, last_seen FROM follower_snapshots WHERE account_id = %s"
        " ORDER BY at DESC LIMIT %s",
        (account_id, limit),
    ).fetchall()
    return [Snapshot(r[0], int(r[1]), r[2], r[3]) for r in reversed(rows)]


def read_arrays(store: Store, ids: Sequence[str]) -> SnapshotArrays:
    """Every sighting of the accounts ``ids`` (rows of that list), by account then date."""
    row_of = {a: i for i, a in enumerate(ids)}
    acc: list[int] = []
    ts: list[float] = []
    fol: list[float] = []
    for aid, at, last, f in store.conn.execute(
        "SELECT account_id, extract(epoch FROM at)::float8, extract(epoch FROM last_seen)::float8, followers"
        " FROM follower_snapshots"
    ):
        i = row_of.get(aid)
        if i is None:
            continue
        for t in (at, last) if last is not None else (at,):
            acc.append(i)
            ts.append(t)
            fol.append(f)
    a, t_, f_ = np.array(acc, np.int64), np.array(ts, np.float64), np.array(fol, np.float64)
    o = np.lexsort((t_, a))
    return SnapshotArrays(a[o], t_[o], f_[o])
