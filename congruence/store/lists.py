"""Campaign lists in PostgreSQL (migration 008, docs/lists.md): a brand's named lists of
influencers, each entry with a status, a note and a version, every change kept in history.

A change of status or note bumps the entry's version; a write that names the version it read
(``expected_version``) and finds another raises ``Conflict`` with the entry as it is now, so two
people editing one list lose no update. The entry's row is locked while it is compared and
written: of two writers with the same version exactly one wins.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from congruence.core.errors import Conflict, InvalidInput, NotFound, first_of
from congruence.store.records import Store

STATUSES = ("prospect", "contacted", "agreed", "declined", "posted")
MAX_NAME = 100
MAX_NOTE = 2000
MAX_IDS = 1000  # per add or remove


@dataclass(frozen=True)
class CampaignList:
    id: int
    name: str
    brand_id: str
    created_by: str
    created_at: datetime
    entries: int

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("id")
        return d | {"created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class OtherList:
    """Another list of the same brand holding the influencer, and its status there."""

    list: str
    status: str


@dataclass(frozen=True)
class Entry:
    """One influencer in a list. gone: its account was deleted since (the entry stays, marked);
    handle: the account's, None when gone; other_lists: the brand's other lists holding it."""

    influencer_id: str
    status: str
    note: str
    version: int
    added_at: datetime
    updated_at: datetime
    updated_by: str
    gone_at: datetime | None
    handle: str | None
    other_lists: tuple[OtherList, ...]

    @property
    def gone(self) -> bool:
        return self.gone_at is not None

    def to_dict(self) -> dict[str, Any]:
        """As JSON takes it (dates in ISO 8601)."""
        return {
            "influencer_id": self.influencer_id,
            "handle": self.handle,
            "status": self.status,
            "note": self.note,
            "version": self.version,
            "added_at": self.added_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
            "gone": self.gone,
            "gone_at": self.gone_at.isoformat() if self.gone_at else None,
            "other_lists": [o.__dict__ for o in self.other_lists],
        }


# -- checks at the boundary ----------------------------------------------------------------
def check_name(name: object) -> str:
    """A list's (or a saved search's) name: 1 to 100 characters, no control character, no '/'
    and not '.' or '..' (it is a URL's part), no space at either end (it would name another)."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidInput(f"must be 1 to {MAX_NAME} characters, got {name!r}", field="name")
    if "/" in name or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInput(f"must have no '/' and no control character, got {name!r}", field="name")
    if name in (".", ".."):
        raise InvalidInput(f"must not be '.' or '..' (they are no name in a URL), got {name!r}", field="name")
    if name != name.strip():
        raise InvalidInput(f"must not begin or end with a space, got {name!r}", field="name")
    return name


def check_status(status: object, field: str = "status") -> str:
    if status not in STATUSES:
        raise InvalidInput(f"must be one of {', '.join(STATUSES)}, got {status!r}", field=field)
    return str(status)


def check_statuses(statuses: Sequence[str], field: str = "exclude_status") -> tuple[str, ...]:
    """Statuses named by a filter (each checked), without repeats."""
    return tuple(dict.fromkeys(check_status(s.strip(), field) for s in statuses))


def check_note(note: object) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput(f"must be text of at most {MAX_NOTE} characters", field="note")
    return note


def _check_ids(ids: Sequence[str]) -> list[str]:
    wanted = list(dict.fromkeys(ids))
    if not wanted or len(wanted) > MAX_IDS:
        raise InvalidInput(f"give 1 to {MAX_IDS} influencer ids, got {len(wanted)}", field="influencer_ids")
    return wanted


# -- lists ---------------------------------------------------------------------------------
_LIST_SQL = (
    "SELECT l.id, l.name, l.brand_id, l.created_by, l.created_at,"
    " (SELECT count(*) FROM list_entries e WHERE e.list_id = l.id) FROM lists l"
)


def create_list(store: Store, name: str, brand_id: str, actor: str) -> CampaignList:
    """A new, empty list of the brand ``brand_id`` (a brand of the store)."""
    check_name(name)
    store.require_kind(brand_id, "brand")
    with store.conn.transaction():
        row = store.conn.execute(
            "INSERT INTO lists (name, brand_id, created_by) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING"
            " RETURNING id",
            (name, brand_id, actor),
        ).fetchone()
    if row is None:
        raise Conflict(f"a list named {name!r} exists already", field="name")
    return get_list(store, name)


def get_list(store: Store, name: str) -> CampaignList:
    row = store.conn.execute(f"{_LIST_SQL} WHERE l.name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"unknown list {name!r}")
    return CampaignList(*row)


def all_lists(store: Store, brand_id: str | None = None) -> list[CampaignList]:
    """Every list (of ``brand_id``), by name."""
    rows = store.conn.execute(
        f"{_LIST_SQL} WHERE %(b)s::text IS NULL OR l.brand_id = %(b)s ORDER BY l.name", {"b": brand_id}
    )
    return [CampaignList(*r) for r in rows]


def delete_list(store: Store, name: str) -> None:
    """Delete the list with its entries and their history."""
    with store.conn.transaction():
        if store.conn.execute("DELETE FROM lists WHERE name = %s RETURNING 1", (name,)).fetchone() is None:
            raise NotFound(f"unknown list {name!r}")


# -- entries -------------------------------------------------------------------------------
_ENTRY_SQL = (
    "SELECT e.influencer_id, e.status, e.note, e.version, e.added_at, e.updated_at, e.updated_by, e.gone_at,"
    " a.handle, ARRAY(SELECT ARRAY[o.name, oe.status] FROM list_entries oe JOIN lists o ON o.id = oe.list_id"
    " WHERE oe.influencer_id = e.influencer_id AND o.brand_id = l.brand_id AND o.id <> l.id ORDER BY o.name)"
    " FROM list_entries e JOIN lists l ON l.id = e.list_id LEFT JOIN accounts a ON a.id = e.influencer_id"
)


def _entry(row: tuple) -> Entry:
    iid, status, note, version, added_at, updated_at, updated_by, gone_at, handle, others = row
    return Entry(
        iid, status, note, version, added_at, updated_at, updated_by, gone_at, handle,
        tuple(OtherList(n, s) for n, s in others),
    )  # fmt: skip


def entries(store: Store, name: str) -> list[Entry]:
    """The entries of the list ``name``, in the order they were added."""
    lst = get_list(store, name)
    rows = store.conn.execute(f"{_ENTRY_SQL} WHERE l.id = %s ORDER BY e.added_at, e.influencer_id", (lst.id,))
    return [_entry(r) for r in rows]


def entry(store: Store, name: str, influencer_id: str) -> Entry:
    lst = get_list(store, name)
    row = store.conn.execute(
        f"{_ENTRY_SQL} WHERE l.id = %s AND e.influencer_id = %s", (lst.id, influencer_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"{influencer_id!r} is not in list {name!r}")
    return _entry(row)


def add(
    store: Store, name: str, ids: Sequence[str], actor: str, status: str = "prospect", note: str = ""
) -> tuple[list[str], list[str]]:
    """Add the influencers ``ids`` (all of the store, or none is added) with ``status`` and
    ``note``; returns (added, already in the list: left as they are)."""
    wanted, status, note = _check_ids(ids), check_status(status), check_note(note)
    lst = get_list(store, name)
    with store.conn.transaction():
        # the list stays until this commits (a concurrent delete waits, or went first: NotFound)
        if store.conn.execute("SELECT 1 FROM lists WHERE id = %s FOR SHARE", (lst.id,)).fetchone() is None:
            raise NotFound(f"unknown list {name!r}")
        # and so do the accounts (a delete between the check and the insert would leave an
        # entry of no account that its trigger never marked gone)
        kinds: dict[str, str] = dict(
            store.conn.execute("SELECT id, kind FROM accounts WHERE id = ANY(%s) FOR SHARE", (wanted,)).fetchall()
        )
        unknown = [repr(i) for i in wanted if i not in kinds]
        if unknown:
            raise NotFound(f"unknown influencer{'s' if len(unknown) > 1 else ''}: {first_of(unknown)}")
        for i in wanted:
            store.check_kind(i, kinds[i], "influencer")
        # an entry removed and added again goes on from its last version, so that a writer
        # holding the old entry's version cannot overwrite the new one
        added = store.conn.execute(
            "INSERT INTO list_entries (list_id, influencer_id, status, note, updated_by, version)"
            " SELECT %s, i, %s, %s, %s, coalesce((SELECT max(h.version) FROM list_history h"
            " WHERE h.list_id = %s AND h.influencer_id = i), 0) + 1"
            " FROM unnest(%s::text[]) AS i ON CONFLICT DO NOTHING RETURNING influencer_id, version",
            (lst.id, status, note, actor, lst.id, wanted),
        ).fetchall()
        new = [r[0] for r in added]
        store.conn.execute(
            "INSERT INTO list_history (list_id, influencer_id, action, actor, new_status, new_note, version)"
            " SELECT %s, i, 'add', %s, %s, %s, v FROM unnest(%s::text[], %s::int[]) AS t(i, v)",
            (lst.id, actor, status, note, new, [r[1] for r in added]),
        )
    fresh = set(new)
    return [i for i in wanted if i in fresh], [i for i in wanted if i not in fresh]


def set_entry(
    store: Store,
    name: str,
    influencer_id: str,
    actor: str,
    status: str | None = None,
    note: str | None = None,
    expected_version: int | None = None,
) -> Entry:
    """Change the entry's status and/or note; returns it as it is now. ``expected_version``: the
    version the caller read; Conflict (with the current entry) when the entry has moved on."""
    if status is None and note is None:
        raise InvalidInput("give a new status or a new note", field="status")
    status = None if status is None else check_status(status)
    note = None if note is None else check_note(note)
    if expected_version is not None and (isinstance(expected_version, bool) or not isinstance(expected_version, int)):
        raise InvalidInput(f"must be a whole number, got {expected_version!r}", field="version")
    lst = get_list(store, name)
    with store.conn.transaction():
        row = store.conn.execute(
            "SELECT status, note, version FROM list_entries WHERE list_id = %s AND influencer_id = %s FOR UPDATE",
            (lst.id, influencer_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"{influencer_id!r} is not in list {name!r}")
        old_status, old_note, version = row
        if expected_version is not None and expected_version != version:
            raise Conflict(
                f"is {version}, not {expected_version}: the entry changed since it was read",
                field="version",
                current=entry(store, name, influencer_id),
            )
        new_status, new_note = status or old_status, old_note if note is None else note
        if (new_status, new_note) != (old_status, old_note):
            store.conn.execute(
                "UPDATE list_entries SET status = %s, note = %s, version = version + 1, updated_at = now(),"
                " updated_by = %s WHERE list_id = %s AND influencer_id = %s",
                (new_status, new_note, actor, lst.id, influencer_id),
            )
            store.conn.execute(
                "INSERT INTO list_history (list_id, influencer_id, action, actor, old_status, new_status,"
                " old_note, new_note, version) VALUES (%s, %s, 'set', %s, %s, %s, %s, %s, %s)",
                (lst.id, influencer_id, actor, old_status, new_status, old_note, new_note, version + 1),
            )
    return entry(store, name, influencer_id)


def remove(store: Store, name: str, ids: Sequence[str], actor: str) -> list[str]:
    """Remove the influencers ``ids`` from the list (all of them in it, or none is removed);
    their history stays."""
    wanted = _check_ids(ids)
    lst = get_list(store, name)
    with store.conn.transaction():
        rows = store.conn.execute(
            "DELETE FROM list_entries WHERE list_id = %s AND influencer_id = ANY(%s)"
            " RETURNING influencer_id, status, note, version",
            (lst.id, wanted),
        ).fetchall()
        missing = sorted(set(wanted) - {r[0] for r in rows})
        if missing:
            raise NotFound(f"not in list {name!r}: {first_of([repr(i) for i in missing])}")
        store.conn.execute(
            "INSERT INTO list_history (list_id, influencer_id, action, actor, old_status, old_note, version)"
            " SELECT %s, i, 'remove', %s, s, n, v FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[])"
            " AS t(i, s, n, v)",
            (lst.id, actor, *map(list, zip(*rows, strict=True))),
        )
    return wanted
