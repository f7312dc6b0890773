"""The collaboration graph in PostgreSQL (table ``collaborations``, migration 007): who named
whom in their posts, and the known matches, as edges account -> handle (docs/collaborations.md).

The migration defines what an edge is (``collab_names``: a post's tags, sponsors and caption
@mentions; ``collab_handle``: a handle's normal form; ``collab_targets``: the account a handle
is). This module keeps the table equal to what the posts say: every write of posts or accounts
(``records.Store``) calls ``refresh`` or ``resolve`` in its own transaction, so the graph is
never stale and never needs a rebuild. Those transactions take ``lock`` first: two ingests at
once then cannot both insert an account's edges, nor miss each other's new accounts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import psycopg

from congruence.store.rows import Collaboration

if TYPE_CHECKING:  # records calls the writes below
    from congruence.store.records import Store

KINDS = ("tag", "sponsor", "mention", "match")
# caption @mentions are the loosest evidence: read only when asked for
DEFAULT_KINDS = ("tag", "sponsor", "match")
_COLUMNS = "account_id, kind, handle, posts, sponsored_posts, first_at, last_at, target_id"
_ORDER = " ORDER BY posts DESC, last_at DESC NULLS LAST, account_id, kind, handle"
_LOCK = 7_361_206  # advisory-lock key (migrations use 7_361_204, publishing 7_361_205)


def lock(conn: psycopg.Connection) -> None:
    """Hold the graph's lock until the transaction ends: take it before any other lock of a
    transaction that writes posts or accounts (then no two such transactions wait on each other)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))


def refresh(conn: psycopg.Connection, account_ids: Iterable[str]) -> None:
    """Rebuild the edges of ``account_ids`` from their posts, and what each handle resolves to.

    Call it inside the transaction that changed their posts (or their own handles), after ``lock``.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return
    conn.execute("DELETE FROM collaborations WHERE account_id = ANY(%s)", (ids,))
    handles = conn.execute(
        "INSERT INTO collaborations (account_id, kind, handle, posts, sponsored_posts, first_at, last_at)"
        " SELECT account_id, kind, handle, posts, sponsored_posts, first_at, last_at FROM collab_counts"
        " WHERE account_id = ANY(%s) RETURNING handle",
        (ids,),
    ).fetchall()
    _resolve_keys(conn, sorted({h for (h,) in handles}))


def resolve(conn: psycopg.Connection, names: Iterable[str]) -> None:
    """Point every edge to ``names`` (account ids or handles, as given) at the account it is now.

    Call it inside the transaction that inserted, deleted or renamed the accounts of ``names``,
    after ``lock``.
    """
    raw = sorted(set(names))
    if raw:
        row = conn.execute("SELECT ARRAY(SELECT DISTINCT collab_handle(n) FROM unnest(%s::text[]) AS n)", (raw,))
        keys = row.fetchone()
        _resolve_keys(conn, [k for k in (keys[0] if keys else []) if k])


def _resolve_keys(conn: psycopg.Connection, keys: list[str]) -> None:
    if keys:  # only the handles some edge has
        rows = conn.execute("SELECT DISTINCT handle FROM collaborations WHERE handle = ANY(%s)", (keys,))
        keys = [h for (h,) in rows]
    if not keys:
        return
    # the filter on collab_targets is pushed into its scans of accounts (by id: the primary key;
    # by handle: accounts_collab_handle_idx)
    conn.execute(
        "UPDATE collaborations c SET target_id = t.target_id FROM unnest(%s::text[]) AS k(handle)"
        " LEFT JOIN (SELECT handle, target_id FROM collab_targets WHERE handle = ANY(%s)) AS t USING (handle)"
        " WHERE c.handle = k.handle AND c.target_id IS DISTINCT FROM t.target_id",
        (keys, keys),
    )


def check_kinds(kinds: Collection[str]) -> list[str]:
    """``kinds`` as a list; ValueError naming the first unknown one."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown collaboration kind {k!r}: expected {', '.join(KINDS)}")
    return list(kinds)


def edges_from(store: Store, account_id: str, kinds: Collection[str] = DEFAULT_KINDS) -> list[Collaboration]:
    """The edges of ``account_id``: the handles it named and the brands it is a known match of,
    most posts first (``kinds``: caption mentions only when named)."""
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM collaboration_edges WHERE account_id = %s AND kind = ANY(%s){_ORDER}",
        (account_id, check_kinds(kinds)),
    )
    return [Collaboration(*r) for r in rows]


def edges_to(store: Store, name: str, kinds: Collection[str] = DEFAULT_KINDS) -> list[Collaboration]:
    """The edges to ``name``: to that handle (any case, a leading '@'), or to the account of that
    id (for a brand: who tagged it, was sponsored by it, or is its known match); most posts first."""
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM collaboration_edges"
        f" WHERE (handle = collab_handle(%s) OR target_id = %s) AND kind = ANY(%s){_ORDER}",
        (name, name, check_kinds(kinds)),
    )
    return [Collaboration(*r) for r in rows]
