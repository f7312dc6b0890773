"""Saved searches in PostgreSQL (migration 010, docs/saved-searches.md): a named match, its
options as JSON, a new brand's encoder outputs, and its newest runs (when, the ids in rank
order, the newest influencer seq it saw, the space that ranked it, its options' hash) so that a
rerun can say who is new, who is gone and what changed.

Rows and arrays only: what the options mean is ``search.saved_searches``' business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from psycopg.types.json import Jsonb

from congruence.core.errors import Conflict, NotFound
from congruence.store.lists import check_name
from congruence.store.records import Store

__all__ = ["KEEP_RUNS", "NewRun", "Run", "SavedSearch", "StoredQuery", "check_name"]

KEEP_RUNS = 100  # the newest runs kept of each search
Mode = Literal["create", "replace", "update"]


@dataclass(frozen=True)
class StoredQuery:
    """A new brand as its encoders saw it: ``images`` (n, d_image) float32 image embeddings,
    None when it has no image; ``text`` (d_text,) float32 text embedding, None when it has no
    text. L2-normalised encoder outputs, as ``Engine._encode_new`` gives them."""

    images: np.ndarray | None
    text: np.ndarray | None


@dataclass(frozen=True)
class NewRun:
    """A run to record: the influencers in rank order and their scores, the newest influencer
    seq (``max_seq``), the generation and the space (``pooled``, ``head:<v>``) of the snapshot
    that ranked them, and the hash of the options it ran with."""

    influencer_ids: Sequence[str]
    scores: Sequence[float]
    max_seq: int
    generation: int | None
    space: str
    options_hash: str


@dataclass(frozen=True)
class Run:
    """One recorded run of a saved search (``NewRun``'s fields, as kept)."""

    id: int
    ran_at: datetime
    max_seq: int
    generation: int | None
    space: str
    options_hash: str
    influencer_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran_at": self.ran_at.isoformat(),
            "count": len(self.influencer_ids),
            "max_seq": self.max_seq,
            "generation": self.generation,
            "space": self.space,
            "options_hash": self.options_hash,
            "influencer_ids": list(self.influencer_ids),
        }


@dataclass(frozen=True)
class SavedSearch:
    """brand_id: a brand of the corpus, or None for a new brand (``new_brand``; its ``query``,
    read by ``get`` only); options: as ``search.saved_searches.SearchSpec.to_options`` wrote
    them; runs: how many are kept."""

    id: int
    name: str
    brand_id: str | None
    new_brand: bool
    options: dict[str, Any]
    query: StoredQuery | None
    created_by: str
    created_at: datetime
    updated_at: datetime | None
    runs: int
    last_run_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "brand_id": self.brand_id,
            "new_brand": self.new_brand,
            "options": self.options,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "runs": self.runs,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
        }


def _sql(with_query: bool) -> str:
    query = "s.query_images, s.query_text" if with_query else "NULL, NULL"
    return (
        f"SELECT s.id, s.name, s.brand_id, s.options, {query}, s.created_by, s.created_at, s.updated_at,"
        " (SELECT count(*) FROM saved_search_runs r WHERE r.search_id = s.id),"
        " (SELECT max(r.ran_at) FROM saved_search_runs r WHERE r.search_id = s.id) FROM saved_searches s"
    )


def _search(row: tuple) -> SavedSearch:
    sid, name, brand, options, images, text, by, at, updated, runs, last = row
    query = None
    if images is not None or text is not None:
        query = StoredQuery(
            None if images is None else np.asarray(images, np.float32).reshape(len(images), -1),
            None if text is None else np.asarray(text, np.float32),
        )
    return SavedSearch(sid, name, brand, brand is None, dict(options), query, by, at, updated, int(runs), last)


def _arrays(query: StoredQuery | None) -> tuple[list | None, list | None]:
    if query is None:
        return None, None
    images = None if query.images is None or not len(query.images) else np.asarray(query.images, np.float32)
    text = None if query.text is None else np.asarray(query.text, np.float32)
    if images is None and text is None:
        raise ValueError("a new brand's query has an image or a text embedding")
    return None if images is None else images.tolist(), None if text is None else text.tolist()


def save(
    store: Store,
    name: str,
    brand_id: str | None,
    options: dict[str, Any],
    query: StoredQuery | None,
    actor: str,
    mode: Mode = "create",
) -> SavedSearch:
    """Store the search ``name``. create: Conflict when the name is taken; replace: the old one
    goes, with its runs; update: its definition changes in place and its runs stay (NotFound
    when there is none). Conflict and NotFound say what happened, not how to go on."""
    check_name(name)
    if (brand_id is None) == (query is None):
        raise ValueError("a saved search has a brand id or a new brand's query, not both or neither")
    images, text = _arrays(query)
    with store.conn.transaction():
        # one save of a name at a time: a replace that waited for another then sees (and replaces) its row
        store.conn.execute("SELECT pg_advisory_xact_lock(hashtext('saved_searches'), hashtext(%s))", (name,))
        if mode == "update":
            row = store.conn.execute(
                "UPDATE saved_searches SET brand_id = %s, options = %s, query_images = %s::real[],"
                " query_text = %s::real[], updated_at = now() WHERE name = %s RETURNING id",
                (brand_id, Jsonb(options), images, text, name),
            ).fetchone()
            if row is None:
                raise NotFound(f"unknown saved search {name!r}")
            return get(store, name)
        if mode == "replace":  # a new row (a new id): a run of the old definition still going records nothing in it
            store.conn.execute("DELETE FROM saved_searches WHERE name = %s", (name,))
        row = store.conn.execute(
            "INSERT INTO saved_searches (name, brand_id, options, query_images, query_text, created_by)"
            " VALUES (%s, %s, %s, %s::real[], %s::real[], %s) ON CONFLICT (name) DO NOTHING RETURNING id",
            (name, brand_id, Jsonb(options), images, text, actor),
        ).fetchone()
    if row is None:
        raise Conflict(f"a saved search named {name!r} exists already")
    return get(store, name)


def get(store: Store, name: str) -> SavedSearch:
    """The search ``name`` with its query (NotFound when there is none)."""
    row = store.conn.execute(f"{_sql(True)} WHERE s.name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"unknown saved search {name!r}")
    return _search(row)


def all_searches(store: Store) -> list[SavedSearch]:
    """Every saved search, by name (without the new brands' query vectors: ``query`` is None)."""
    return [_search(r) for r in store.conn.execute(f"{_sql(False)} ORDER BY s.name")]


def delete(store: Store, name: str) -> None:
    """Delete the search with its runs."""
    with store.conn.transaction():
        if store.conn.execute("DELETE FROM saved_searches WHERE name = %s RETURNING 1", (name,)).fetchone() is None:
            raise NotFound(f"unknown saved search {name!r}")


_COLUMNS = "id, ran_at, max_seq, generation, space, options_hash, influencer_ids, scores"


def _run(row: tuple) -> Run:
    rid, at, max_seq, generation, space, digest, ids, scores = row
    return Run(rid, at, int(max_seq), generation, space, digest, tuple(ids), tuple(float(s) for s in scores))


def last_run(store: Store, search_id: int) -> Run | None:
    row = store.conn.execute(
        f"SELECT {_COLUMNS} FROM saved_search_runs WHERE search_id = %s ORDER BY id DESC LIMIT 1", (search_id,)
    ).fetchone()
    return None if row is None else _run(row)


def runs(store: Store, search_id: int, limit: int = 20) -> list[Run]:
    """The newest ``limit`` runs, newest first."""
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM saved_search_runs WHERE search_id = %s ORDER BY id DESC LIMIT %s", (search_id, limit)
    )
    return [_run(r) for r in rows]


def record_run(
    store: Store, search_id: int, new: NewRun, record: bool = True, keep: int = KEEP_RUNS
) -> tuple[Run | None, Run | None]:
    """(the previous run, this run as recorded) read and written under a lock on the search's row,
    so that of two runs at once each compares with the other or with the same run before both,
    never both with the same one while both are recorded. Not recorded (None): ``record`` false
    (a read-only server), the search deleted meanwhile, or a previous run from a newer snapshot
    generation (an older snapshot's answer must not become what the next run compares with).
    Only the newest ``keep`` runs of the search are kept."""
    with store.conn.transaction():
        lock = " FOR UPDATE" if record else ""
        if store.conn.execute(f"SELECT 1 FROM saved_searches WHERE id = %s{lock}", (search_id,)).fetchone() is None:
            return None, None
        previous = last_run(store, search_id)
        if not record or (
            previous is not None
            and previous.generation is not None
            and new.generation is not None
            and new.generation < previous.generation
        ):
            return previous, None
        row = store.conn.execute(
            "INSERT INTO saved_search_runs"
            " (search_id, max_seq, generation, space, options_hash, influencer_ids, scores)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                search_id,
                new.max_seq,
                new.generation,
                new.space,
                new.options_hash,
                list(new.influencer_ids),
                [float(s) for s in new.scores],
            ),
        ).fetchone()
        store.conn.execute(
            "DELETE FROM saved_search_runs WHERE search_id = %s AND id NOT IN"
            " (SELECT id FROM saved_search_runs WHERE search_id = %s ORDER BY id DESC LIMIT %s)",
            (search_id, search_id, keep),
        )
    return previous, None if row is None else _run(row)
