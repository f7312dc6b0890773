"""What the rest of congruence reads of the campaign lists (``store.lists``): a list's history,
its rows for its export, the influencers a search leaves out, and the lists of a brand that hold
a hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from congruence.store.lists import OtherList, check_statuses, get_list
from congruence.store.records import Store

WORKED_KINDS = ("tag", "sponsor", "match")  # what the export's `collaborations` column counts


@dataclass(frozen=True)
class Change:
    """One row of an entry's history: who did what (add, set, remove, gone, back), and when."""

    influencer_id: str
    action: str
    actor: str
    old_status: str | None
    new_status: str | None
    old_note: str | None
    new_note: str | None
    version: int | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"at": self.at.isoformat()}


@dataclass(frozen=True)
class ExportRow:
    """One entry as a list export writes it: the account (None where unknown: gone), its metrics
    (None: not computed), its collaborations (distinct handles it tagged, was sponsored by or is a
    known match of) and those edges (``worked_with``: ``handle:kind:posts:last day`` by handle
    then kind, ';'-separated, as the export's ``collaborated_with``), and the list's fields."""

    influencer_id: str
    handle: str | None
    category: str | None
    followers: int | None
    engagement_rate: float | None
    posts_per_week: float | None
    sponsored_share: float | None
    sponsored_ratio: float | None
    follower_growth: float | None
    authenticity_flags: str | None
    collaborations: int | None
    worked_with: str | None
    status: str
    note: str
    version: int
    added_at: datetime
    updated_at: datetime
    updated_by: str
    gone: bool
    other_lists: str


_EXPORT_SQL = """
SELECT e.influencer_id, a.handle, a.category, a.followers,
       m.engagement_rate, m.posts_per_week, m.sponsored_share, m.sponsored_ratio, m.growth_monthly,
       CASE WHEN m.account_id IS NOT NULL THEN array_to_string(ARRAY(
           SELECT DISTINCT f->>'signal' FROM jsonb_array_elements(m.flags) f ORDER BY 1), ';') END,
       CASE WHEN a.id IS NOT NULL THEN (SELECT count(DISTINCT c.handle)::integer FROM collaboration_edges c
           WHERE c.account_id = e.influencer_id AND c.kind = ANY(%(kinds)s)) END,
       CASE WHEN a.id IS NOT NULL THEN array_to_string(ARRAY(
           SELECT c.handle || ':' || c.kind || ':' || c.posts || ':'
                  || coalesce(to_char(c.last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), '')
           FROM collaboration_edges c WHERE c.account_id = e.influencer_id AND c.kind = ANY(%(kinds)s)
           ORDER BY c.handle, c.kind), ';') END,
       e.status, e.note, e.version, e.added_at, e.updated_at, e.updated_by, e.gone_at IS NOT NULL,
       array_to_string(ARRAY(SELECT o.name || ':' || oe.status FROM list_entries oe JOIN lists o ON o.id = oe.list_id
           WHERE oe.influencer_id = e.influencer_id AND o.brand_id = l.brand_id AND o.id <> l.id ORDER BY o.name), ';')
FROM list_entries e JOIN lists l ON l.id = e.list_id
LEFT JOIN accounts a ON a.id = e.influencer_id
LEFT JOIN account_metrics m ON m.account_id = e.influencer_id
WHERE l.id = %(list)s ORDER BY e.added_at, e.influencer_id
"""


def export_rows(store: Store, name: str) -> list[ExportRow]:
    """The entries of the list ``name`` with their accounts, metrics and collaborations, in the
    order they were added (one statement: one consistent view)."""
    lst = get_list(store, name)
    rows = store.conn.execute(_EXPORT_SQL, {"list": lst.id, "kinds": list(WORKED_KINDS)})
    return [ExportRow(*r) for r in rows]


def listed_seqs(store: Store, name: str, statuses: Sequence[str] = ()) -> list[int]:
    """The seqs (FAISS labels) of the influencers in the list ``name`` that the store holds (only
    those with one of ``statuses``, when given), ascending."""
    lst = get_list(store, name)
    wanted = list(check_statuses(statuses)) if statuses else None
    rows = store.conn.execute(
        "SELECT a.seq FROM list_entries e JOIN accounts a ON a.id = e.influencer_id"
        " WHERE e.list_id = %s AND (%s::text[] IS NULL OR e.status = ANY(%s)) ORDER BY a.seq",
        (lst.id, wanted, wanted),
    )
    return [int(r[0]) for r in rows]


def in_lists(store: Store, brand_id: str, ids: Sequence[str]) -> dict[str, tuple[OtherList, ...]]:
    """Influencer -> the lists of ``brand_id`` holding it (with its status there), for ``ids``
    that are in any."""
    rows = store.conn.execute(
        "SELECT e.influencer_id, l.name, e.status FROM list_entries e JOIN lists l ON l.id = e.list_id"
        " WHERE l.brand_id = %s AND e.influencer_id = ANY(%s) ORDER BY e.influencer_id, l.name",
        (brand_id, list(ids)),
    )
    out: dict[str, list[OtherList]] = {}
    for i, name, status in rows:
        out.setdefault(i, []).append(OtherList(name, status))
    return {i: tuple(v) for i, v in out.items()}


def brand_lists(store: Store, brand_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Brand -> influencer -> the brand's lists holding it, ``name:status`` by list name,
    ';'-separated, for the brands of ``brand_ids`` that have a list (as ``in_lists`` marks hits)."""
    rows = store.conn.execute(
        "SELECT l.brand_id, e.influencer_id, string_agg(l.name || ':' || e.status, ';' ORDER BY l.name)"
        " FROM list_entries e JOIN lists l ON l.id = e.list_id"
        " WHERE l.brand_id = ANY(%s) GROUP BY l.brand_id, e.influencer_id",
        (list(brand_ids),),
    )
    out: dict[str, dict[str, str]] = {}
    for brand, influencer, text in rows:
        out.setdefault(brand, {})[influencer] = text
    return out


def history(store: Store, name: str, influencer_id: str | None = None) -> list[Change]:
    """Every change of the list (of one influencer's entry), oldest first."""
    lst = get_list(store, name)
    rows = store.conn.execute(
        "SELECT influencer_id, action, actor, old_status, new_status, old_note, new_note, version, at"
        " FROM list_history WHERE list_id = %s AND (%s::text IS NULL OR influencer_id = %s) ORDER BY id",
        (lst.id, influencer_id, influencer_id),
    )
    return [Change(*r) for r in rows]
