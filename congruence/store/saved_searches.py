"""Saved searches in PostgreSQL (migration 010, docs/saved-searches.md): a named match, its
options as JSON, a new brand's query vectors, and every run (when, the ids in rank order, the
newest influencer seq it saw) so that a rerun can say who is new and who is gone.

Rows and arrays only: what the options mean is ``search.saved_searches``' business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from congruence.core.errors import Conflict, NotFound
from congruence.store.lists import check_name
from congruence.store.records import Store

__all__ = ["Run", "SavedSearch", "StoredQuery", "check_name"]


@dataclass(frozen=True)
class StoredQuery:
    """A new brand's query as saved: ``vector`` (d,) L2-normalised float32 in ``space``;
    ``posts`` (P, d) float32 per-post projections when a head was in service, else None."""

    space: str
    vector: np.ndarray
    posts: np.ndarray | None


@dataclass(frozen=True)
class Run:
    """One run of a saved search: the influencers in rank order, their scores, and the newest
    influencer seq of the snapshot that answered (``max_seq``)."""

    id: int
    ran_at: datetime
    max_seq: int
    generation: int | None
    influencer_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran_at": self.ran_at.isoformat(),
            "count": len(self.influencer_ids),
            "max_seq": self.max_seq,
            "generation": self.generation,
            "influencer_ids": list(self.influencer_ids),
        }


@dataclass(frozen=True)
class SavedSearch:
    """brand_id: a brand of the corpus, or None for a new brand (``query``); options: as
    ``search.saved_searches.SearchSpec.to_options`` wrote them; runs: how many are recorded."""

    id: int
    name: str
    brand_id: str | None
    options: dict[str, Any]
    query: StoredQuery | None
    created_by: str
    created_at: datetime
    runs: int
    last_run_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "brand_id": self.brand_id,
            "new_brand": self.query is not None,
            "options": self.options,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "runs": self.runs,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
        }


_SQL = (
    "SELECT s.id, s.name, s.brand_id, s.options, s.query_space, s.query_vector, s.query_posts, s.created_by,"
    " s.created_at, (SELECT count(*) FROM saved_search_runs r WHERE r.search_id = s.id),"
    " (SELECT max(r.ran_at) FROM saved_search_runs r WHERE r.search_id = s.id) FROM saved_searches s"
)


def _search(row: tuple) -> SavedSearch:
    sid, name, brand, options, space, vector, posts, by, at, runs, last = row
    query = None
    if space is not None:
        query = StoredQuery(
            space,
            np.asarray(vector, np.float32),
            None if posts is None else np.asarray(posts, np.float32).reshape(len(posts), -1),
        )
    return SavedSearch(sid, name, brand, dict(options), query, by, at, int(runs), last)


def save(
    store: Store,
    name: str,
    brand_id: str | None,
    options: dict[str, Any],
    query: StoredQuery | None,
    actor: str,
    replace: bool = False,
) -> SavedSearch:
    """Store the search ``name`` (Conflict when the name is taken, unless ``replace``: the old
    one goes, with its runs, since they answered other options)."""
    check_name(name)
    if (brand_id is None) == (query is None):
        raise ValueError("a saved search has a brand id or a new brand's query, not both or neither")
    vec = posts = space = None
    if query is not None:
        space, vec = query.space, np.asarray(query.vector, np.float32).tolist()
        posts = None if query.posts is None else np.asarray(query.posts, np.float32).tolist()
    with store.conn.transaction():
        # one save of a name at a time: a replace that waited for another then sees (and replaces) its row
        store.conn.execute("SELECT pg_advisory_xact_lock(hashtext('saved_searches'), hashtext(%s))", (name,))
        if replace:  # a new row (a new id): a run of the old definition still going records nothing in it
            store.conn.execute("DELETE FROM saved_searches WHERE name = %s", (name,))
        row = store.conn.execute(
            "INSERT INTO saved_searches (name, brand_id, options, query_space, query_vector, query_posts, created_by)"
            " VALUES (%s, %s, %s, %s, %s::real[], %s::real[], %s) ON CONFLICT (name) DO NOTHING RETURNING id",
            (name, brand_id, Jsonb(options), space, vec, posts, actor),
        ).fetchone()
    if row is None:
        raise Conflict(f'a saved search named {name!r} exists already: replace it (--replace, or "replace": true)')
    return get(store, name)


def get(store: Store, name: str) -> SavedSearch:
    row = store.conn.execute(f"{_SQL} WHERE s.name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"unknown saved search {name!r}")
    return _search(row)


def all_searches(store: Store) -> list[SavedSearch]:
    """Every saved search, by name."""
    return [_search(r) for r in store.conn.execute(f"{_SQL} ORDER BY s.name")]


def delete(store: Store, name: str) -> None:
    """Delete the search with its runs."""
    with store.conn.transaction():
        if store.conn.execute("DELETE FROM saved_searches WHERE name = %s RETURNING 1", (name,)).fetchone() is None:
            raise NotFound(f"unknown saved search {name!r}")


_RUN_SQL = "SELECT id, ran_at, max_seq, generation, influencer_ids, scores FROM saved_search_runs"


def _run(row: tuple) -> Run:
    rid, at, max_seq, generation, ids, scores = row
    return Run(rid, at, int(max_seq), generation, tuple(ids), tuple(float(s) for s in scores))


def last_run(store: Store, search_id: int) -> Run | None:
    row = store.conn.execute(f"{_RUN_SQL} WHERE search_id = %s ORDER BY id DESC LIMIT 1", (search_id,)).fetchone()
    return None if row is None else _run(row)


def runs(store: Store, search_id: int, limit: int = 20) -> list[Run]:
    """The newest ``limit`` runs, newest first."""
    rows = store.conn.execute(f"{_RUN_SQL} WHERE search_id = %s ORDER BY id DESC LIMIT %s", (search_id, limit))
    return [_run(r) for r in rows]


def record_run(
    store: Store,
    search_id: int,
    ids: Sequence[str],
    scores: Sequence[float],
    max_seq: int,
    generation: int | None,
) -> Run | None:
    """Record a run (None when the search was deleted meanwhile: nothing to record it in)."""
    with store.conn.transaction():
        row = store.conn.execute(
            "INSERT INTO saved_search_runs (search_id, max_seq, generation, influencer_ids, scores)"
            " SELECT id, %s, %s, %s, %s FROM saved_searches WHERE id = %s"
            " RETURNING id, ran_at, max_seq, generation, influencer_ids, scores",
            (max_seq, generation, list(ids), [float(s) for s in scores], search_id),
        ).fetchone()
    return None if row is None else _run(row)
