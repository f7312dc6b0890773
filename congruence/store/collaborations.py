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

import dataclasses
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

import psycopg

from congruence.core.errors import InvalidInput
from congruence.store.rows import Collaboration

if TYPE_CHECKING:  # records calls the writes below
    from congruence.store.records import Store

KINDS = ("tag", "sponsor", "mention", "match")
# caption @mentions are the loosest evidence: read only when asked for
DEFAULT_KINDS = ("tag", "sponsor", "match")
NAMED_KINDS = ("tag", "sponsor")  # what another account's posts say of it: tagged by, sponsored by
MAX_EDGES = 5000  # per list of an account's view
_COLUMNS = "account_id, kind, handle, posts, sponsored_posts, first_at, last_at, target_id"
_ORDER = " ORDER BY posts DESC, last_at DESC NULLS LAST, account_id, kind, handle"
_LOCK = 7_361_206  # advisory-lock key (migrations use 7_361_204, publishing 7_361_205)
# what collab_handle's regex '\s' strips (PostgreSQL's UTF-8 ctype: not the no-break spaces
# U+00A0, U+2007, U+202F, nor U+0085 and U+001C-U+001F, which Python's str.strip also strips)
_SQL_SPACE = "\t\n\v\f\r \u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
# the only characters PostgreSQL's lower() turns into a username's (ASCII) ones; Python lowers
# U+0130 to two characters, 'i' and a combining dot
_SQL_LOWER_TO_ASCII = {0x130: "i", 0x212A: "k"}
_USERNAME = re.compile(r"[a-z0-9._]{1,30}")


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


def normal_handle(name: str) -> str:
    """``name`` in the graph's normal form, as the SQL function ``collab_handle`` gives it (one
    definition, in the migration; this is its twin for what never goes through SQL, such as a
    filter's handles): the spaces around it and one leading '@' dropped, a valid Instagram
    username lower-cased, anything else kept as it is ('' when nothing is left)."""
    s = name.strip(_SQL_SPACE)
    s = s[1:] if s.startswith("@") else s
    low = s.translate(_SQL_LOWER_TO_ASCII).lower()
    return low if is_username(low) else s


def is_username(handle: str) -> bool:
    """Whether ``handle`` is a valid Instagram username (in lower case, as the normal form has it)."""
    return _USERNAME.fullmatch(handle) is not None


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


@dataclass(frozen=True)
class AccountCollaborations:
    """Who one account worked with, as its view shows it: each list most posts first, at most
    ``limit`` edges (``account_collaborations``); the ``*_total`` fields count them all.

    worked_with: its own edges (``edges_from``: the handles it tagged or was sponsored by, the
    brands it is a known match of); handles: how many distinct handles those are (the export's
    ``collaborations`` column). tagged_by: the other accounts' tags and sponsors naming it (for a
    brand: the creators who tagged it or were sponsored by it); partners: the known matches
    naming it (for a brand: its known partners). An edge names this account when its
    ``target_id`` is this account (docs/collaborations.md, "Handles").
    """

    worked_with: tuple[Collaboration, ...]
    worked_with_total: int
    handles: int
    tagged_by: tuple[Collaboration, ...]
    tagged_by_total: int
    partners: tuple[Collaboration, ...]
    partners_total: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON takes it (dates in ISO 8601, None when undated)."""
        return {
            "collaborations": self.handles,
            "worked_with": [edge_dict(e) for e in self.worked_with],
            "worked_with_total": self.worked_with_total,
            "tagged_by": [edge_dict(e) for e in self.tagged_by],
            "tagged_by_total": self.tagged_by_total,
            "partners": [edge_dict(e) for e in self.partners],
            "partners_total": self.partners_total,
        }


def edge_dict(e: Collaboration) -> dict[str, Any]:
    """One edge as JSON takes it: its fields, dates in ISO 8601 (None when undated)."""
    d: dict[str, Any] = dict(e.__dict__)
    for k in ("first_at", "last_at"):
        d[k] = d[k].isoformat() if d[k] is not None else None
    return d


def _in_utc(e: Collaboration) -> Collaboration:
    """``e`` with its dates in UTC (the session's time zone may be any), so that their days are
    the export's (``search.export_collabs``)."""
    first, last = (at.astimezone(UTC) if at is not None else None for at in (e.first_at, e.last_at))
    return dataclasses.replace(e, first_at=first, last_at=last)


def account_collaborations(store: Store, account_id: str, limit: int = 100) -> AccountCollaborations:
    """The collaborations of ``account_id`` (an account of the store; see ``AccountCollaborations``),
    at most ``limit`` edges (0 to ``MAX_EDGES``) per list, dates in UTC."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_EDGES:
        raise InvalidInput(f"must be a whole number from 0 to {MAX_EDGES}, got {limit!r}", field="limit")
    own, named, matched = (list(DEFAULT_KINDS), list(NAMED_KINDS), ["match"])
    totals = store.conn.execute(
        "SELECT count(*) FILTER (WHERE account_id = %(id)s AND kind = ANY(%(own)s)),"
        " count(DISTINCT handle) FILTER (WHERE account_id = %(id)s AND kind = ANY(%(own)s)),"
        " count(*) FILTER (WHERE target_id = %(id)s AND kind = ANY(%(named)s)),"
        " count(*) FILTER (WHERE target_id = %(id)s AND kind = 'match')"
        " FROM collaboration_edges WHERE account_id = %(id)s OR target_id = %(id)s",
        {"id": account_id, "own": own, "named": named},
    ).fetchone()
    n_own, n_handles, n_named, n_matched = totals if totals else (0, 0, 0, 0)

    def edges(where: str, kinds: list[str]) -> tuple[Collaboration, ...]:
        rows = store.conn.execute(
            f"SELECT {_COLUMNS} FROM collaboration_edges WHERE {where} = %s AND kind = ANY(%s){_ORDER} LIMIT %s",
            (account_id, kinds, limit),
        )
        return tuple(_in_utc(Collaboration(*r)) for r in rows)

    return AccountCollaborations(
        edges("account_id", own),
        int(n_own),
        int(n_handles),
        edges("target_id", named),
        int(n_named),
        edges("target_id", matched),
        int(n_matched),
    )
