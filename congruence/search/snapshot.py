"""What a query reads: one consistent version of the index, the influencer table and the head,
and what it reads from PostgreSQL besides (query vectors, exact vectors, versions).

A ``Snapshot`` is swapped whole by the engine, never mutated (but for its cache of filter
selections); two snapshots may share one index. A ``VectorReader`` is the one door to
PostgreSQL for the search path: the engine's borrows a pooled connection per read, a Ray
actor's holds its own connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from congruence.indexer.index import Selection, VectorIndex
from congruence.search.filters import Filters
from congruence.search.metric_filters import MetricsIndex
from congruence.search.safety import SafetyIndex
from congruence.store.collab_index import CollabIndex
from congruence.store.records import Store
from congruence.store.rows import AccountTable
from congruence.store.vectors import VectorStore
from congruence.training.model import CongruenceHead

MAX_SELECTIONS = 64  # filters whose selections a snapshot keeps (1M accounts: 1.1 MB each)
Ranked = tuple[np.ndarray, np.ndarray]  # (seqs int64, scores float32), best first
Scored = dict[int, float]  # seq -> the head's score of one query's candidate


class ShardSet(Protocol):
    """The shards behind a sharded snapshot, as its ingress reaches them (``search.shards``):
    the two parts of ``retrieve`` that need a shard's own data."""

    def search(
        self, xq: np.ndarray, wanted: list[int], filters: Filters, brand_posts: Sequence[np.ndarray | None] | None
    ) -> tuple[list[Ranked], list[Scored]]:
        """Per query, every shard's FAISS top ``wanted`` that pass ``filters``, merged by score;
        and, for a query with ``brand_posts``, the head's score of every candidate a shard
        returned (scored in the same call: one round when nothing else is needed)."""
        ...

    def rerank(
        self, brand_posts: list[np.ndarray], candidates: list[np.ndarray], known: Sequence[Scored] | None = None
    ) -> list[Ranked]:
        """Per query, its candidates ordered by the head's score as ``rerank.rerank`` orders
        them; the shards are asked only for those ``known`` lacks."""
        ...

    def post_vectors(self, seqs: np.ndarray) -> dict[int, np.ndarray]:
        """seq -> (n_posts, d) per-post vectors held beside the shards' indexes."""
        ...


@dataclass(frozen=True)
class Snapshot:
    """One version of what queries read.

    space: the embedding space the index holds ('pooled', or 'head:<version>' when a trained
    head is in service, in which case ``head`` is that head). row_of_seq: (max seq + 1,)
    int32, the table row of each seq, -1 if none. safety: the brand-safety screen's view of
    the table (None: not read; brand-safety filters are then refused). metrics: the account
    metrics of the table (None: not read; metric filters are then refused).
    """

    index: VectorIndex
    table: AccountTable
    row_of_seq: np.ndarray
    model: str
    space: str
    head: CongruenceHead | None = None
    generation: int = 0
    safety: SafetyIndex | None = None
    metrics: MetricsIndex | None = None
    live: Selection | None = None
    collabs: CollabIndex | None = None  # the collaboration graph of the table (None: not read)
    shards: ShardSet | None = None  # a sharded snapshot's: its index is empty, the shards hold the accounts
    selections: dict[Filters, Selection] = field(default_factory=dict, compare=False, repr=False)

    def selection(self, filters: Filters) -> Selection | None:
        """The index positions passing ``filters`` (None: every live one), built once per filter."""
        if not filters.active or self.shards is not None:  # shards select their own accounts
            return self.live
        sel = self.selections.get(filters)
        if sel is None:
            if len(self.selections) >= MAX_SELECTIONS:
                self.selections.clear()
            mask = filters.mask(self.table, self.index, safety=self.safety, metrics=self.metrics, collabs=self.collabs)
            sel = self.selections[filters] = self.index.select(mask if self.live is None else mask & self.live.mask)
        return sel

    def rows(self, seqs: np.ndarray) -> np.ndarray:
        """(n,) int64 table rows of ``seqs`` (all present in the table)."""
        return self.row_of_seq[np.asarray(seqs, np.int64)].astype(np.int64)

    @property
    def reranks(self) -> bool:
        """Whether a head in service reranks (it needs the per-post vectors beside the index)."""
        return self.head is not None and self.index.posts is not None


@dataclass(frozen=True)
class Queries:
    """Accounts as queries, in the order asked. ids: those found with a vector; xq: (n, d)
    L2-normalised vectors in the snapshot's space; posts: each one's (P, d) per-post vectors
    (None where unknown, or when not asked for); missing: ids asked for without a vector."""

    ids: list[str]
    xq: np.ndarray
    posts: list[np.ndarray | None]
    missing: list[str]


class VectorReader:
    """Reads vectors of a snapshot's space from PostgreSQL. reading: opens a ``Store`` for
    one read (a pooled connection: ``StorePool.reading``); ``of_store`` shares one store's
    connection, one caller at a time."""

    def __init__(self, reading: Callable[[], AbstractContextManager[Store]]):
        self.reading = reading

    @classmethod
    def of_store(cls, store: Store) -> VectorReader:
        lock = threading.RLock()

        @contextlib.contextmanager
        def reading() -> Iterator[Store]:
            with lock:
                yield store

        return cls(reading)

    def exact(self, space: str, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seqs found, (n, d) float32 vectors) of ``seqs`` in ``space``, in seq order."""
        with self.reading() as store:
            found, _, vecs = VectorStore(store).account_vectors(space, seqs=np.unique(np.asarray(seqs, np.int64)))
        return found, vecs

    def queries(self, space: str, ids: Sequence[str], with_posts: bool) -> Queries:
        """The vectors (and per-post vectors) of accounts ``ids`` (no duplicates) in ``space``."""
        with self.reading() as store:
            vstore = VectorStore(store)
            _, got, vecs = vstore.account_vectors(space, ids=list(ids))
            posts = vstore.post_vectors(space, ids=list(ids)) if with_posts and got else {}
        where = {a: i for i, a in enumerate(got)}
        found = [a for a in ids if a in where]
        xq = vecs[[where[a] for a in found]] if found else np.zeros((0, 0), np.float32)
        return Queries(found, xq, [posts.get(a) for a in found], [a for a in ids if a not in where])

    def versions(self, space: str, ids: Sequence[str]) -> dict[str, int]:
        """Account id -> version of its vector in ``space`` (changes whenever the vector does)."""
        with self.reading() as store:
            return VectorStore(store).vector_versions(space, ids)
