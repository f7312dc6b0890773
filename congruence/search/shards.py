"""Sharded serving: shards that hold the accounts, an ingress that answers through them.

Accounts are split by a stable hash of their id (``core.hashes.shard_of``) into n shards,
each a published index of its own (``congruence shards build``). A shard (``ShardServer``)
is a read-only ``Engine`` on its index. It answers the two parts of ``retrieve`` that need
its data: FAISS' top lists of its accounts that pass the filters, and the head's scores
of its candidates from the per-post vectors beside its index. The ingress
(``ShardedEngine``) is an ``Engine`` whose snapshot holds no account vector: its
``ShardSet`` fans each part out to every shard and merges, and the rest of ``retrieve``
runs at the ingress, on the same code as a single process. With exact search in each
shard, the answer is the single process's, ids, order and scores.

Each answer comes from one generation. The ingress sends the generation of its snapshot
with every request. A shard answers from that generation: its current snapshot, or the one
before it, which it keeps for the ingresses that have not moved yet. When it has neither,
it loads the newest, and refuses when that is still another (``ShardUnavailable``, 503,
naming the shard).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

import numpy as np

from congruence.core.errors import Busy
from congruence.core.hashes import shard_of
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import ModelIds
from congruence.indexer.index import VectorIndex
from congruence.indexer.publish import NotPublished, Publication
from congruence.search.engine import Engine
from congruence.search.filters import Filters
from congruence.search.loader import SnapshotLoader
from congruence.search.metric_filters import check_computed
from congruence.search.rerank import rerank
from congruence.search.retrieve import _search
from congruence.search.snapshot import Ranked, Scored, Snapshot
from congruence.store.pool import StorePool

logger = logging.getLogger(__name__)
T = TypeVar("T")
# a shard's expected part of a merged list of N is N / n; the head scores its first
# N * SCORE_MARGIN / n + SCORE_EXTRA in the search's round (at N = 200, n = 4: 85; its part,
# binomial, passes 85 with probability 2e-8), and the ingress asks for any more it needs
SCORE_MARGIN, SCORE_EXTRA = 1.5, 10
KEEP_GENERATIONS = 4  # an ingest moves the generation up to 3 times (metrics, screen, index); an export pins one


class ShardUnavailable(Busy):
    """A shard cannot answer (down, restarting, or on another generation): 503, naming it."""


@dataclass(frozen=True)
class ShardHealth:
    shard: int
    shards: int
    generation: int
    accounts: int
    head: str | None
    load_error: str | None


class ShardServer:
    """One shard: a read-only engine on shard ``i`` of ``n``, answering by generation."""

    def __init__(self, settings: Settings, i: int, n: int, pool: StorePool | None = None):
        self.i, self.n = i, n
        self.engine = Engine(settings, pool, shard=(i, n))
        self._previous: dict[int, Snapshot] = {}  # generations before, for ingresses that have not moved yet
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.close()

    def snapshot(self, generation: int) -> Snapshot:
        """The snapshot of ``generation``: the current one, the one before, or the newest loaded
        now; ShardUnavailable when none is that generation."""
        snap = self.engine.snapshot
        if snap.generation == generation:
            return snap
        with self._lock:
            if generation in self._previous:
                return self._previous[generation]
            newest = self.engine.current()
            if newest is not snap:
                self._previous[snap.generation] = snap  # they share the index while it did not change
                for old in sorted(self._previous)[:-KEEP_GENERATIONS]:
                    del self._previous[old]
            if newest.generation == generation:
                return newest
        why = f": {self.engine.load_error}" if self.engine.load_error else ""
        raise ShardUnavailable(
            f"shard {self.i} of {self.n} serves generation {newest.generation}, the ingress asked for {generation}{why}"
        )

    def search(
        self,
        generation: int,
        xq: np.ndarray,
        wanted: list[int],
        filters: Filters,
        brand_posts: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[Ranked], list[Scored]]:
        """Per query, FAISS' top ``wanted`` of this shard's accounts that pass ``filters``; and,
        for a query with ``brand_posts``, the head's score of the first of them, as many as
        this shard's part of the merged list is likely to be (``SCORE_MARGIN``)."""
        lists = self._search(generation, xq, wanted, filters)
        scored: list[Scored] = [{} for _ in lists]
        todo = [i for i, p in enumerate(brand_posts or []) if p is not None and len(lists[i][0])]
        if todo:
            share = [min(wanted[i], math.ceil(wanted[i] * SCORE_MARGIN / self.n) + SCORE_EXTRA) for i in todo]
            cands = [lists[i][0][:m] for i, m in zip(todo, share, strict=True)]
            ranked = self.rerank(generation, [brand_posts[i] for i in todo], cands)  # type: ignore[index,misc]
            for i, (seqs, sc) in zip(todo, ranked, strict=True):
                scored[i] = dict(zip(seqs.tolist(), sc.tolist(), strict=True))
        return lists, scored

    def _search(self, generation: int, xq: np.ndarray, wanted: list[int], filters: Filters) -> list[Ranked]:
        snap = self.snapshot(generation)
        none = np.zeros(0, np.int64)
        # none of this shard's accounts can pass (the ingress checked the filter against them all)
        absent = filters.category is not None and filters.category not in snap.table.category_codes[1]
        m = snap.metrics
        uncomputed = filters.bounds.active and (m is None or not m.computed.any())
        uncomputed |= filters.bounds.on_growth and m is not None and not np.isfinite(m.growth).any()
        if absent or uncomputed:
            return [(none, np.zeros(0, np.float32))] * len(xq)
        return _search(snap, xq, wanted, snap.selection(filters), [none] * len(xq))

    def rerank(self, generation: int, brand_posts: list[np.ndarray], candidates: list[np.ndarray]) -> list[Ranked]:
        """Per query, its candidates (this shard's) ordered by the head's score."""
        snap = self.snapshot(generation)
        assert snap.head is not None, "rerank without a head in service"
        return rerank(snap.head, snap.index, brand_posts, candidates)

    def post_vectors(self, generation: int, seqs: np.ndarray) -> dict[int, np.ndarray]:
        snap = self.snapshot(generation)
        posts = snap.index.posts
        if posts is None:
            return {}
        pos = snap.index.positions(np.asarray(seqs, np.int64))
        found = {int(s): posts.of(int(p)) for s, p in zip(seqs, pos, strict=True) if p >= 0}
        return {s: v for s, v in found.items() if v is not None}

    def health(self) -> ShardHealth:
        """What this shard holds now (never a load: a probe must not move it)."""
        snap = self.engine.snapshot
        head = snap.head.version if snap.head is not None else None
        return ShardHealth(self.i, self.n, snap.generation, snap.index.n_alive, head, self.engine.load_error)


class ShardClient(Protocol):
    """How the ingress reaches one shard: in this process (``ShardServer``) or on Ray Serve."""

    def search(
        self,
        generation: int,
        xq: np.ndarray,
        wanted: list[int],
        filters: Filters,
        brand_posts: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[Ranked], list[Scored]]: ...

    def rerank(self, generation: int, brand_posts: list[np.ndarray], candidates: list[np.ndarray]) -> list[Ranked]: ...

    def post_vectors(self, generation: int, seqs: np.ndarray) -> dict[int, np.ndarray]: ...

    def health(self) -> ShardHealth: ...


class Fanout:
    """Calls every shard at once (a thread each), in shard order."""

    def __init__(self, clients: Sequence[ShardClient]):
        self.clients = list(clients)
        self._threads = ThreadPoolExecutor(max_workers=max(1, 2 * len(clients)), thread_name_prefix="shard")

    def __call__(self, call: Callable[[int, ShardClient], T], which: Sequence[int] | None = None) -> list[T]:
        which = range(len(self.clients)) if which is None else which
        futures = [self._threads.submit(call, i, self.clients[i]) for i in which]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Shards:
    """The ``ShardSet`` of one ingress snapshot: its generation, and the shard of each seq."""

    fanout: Fanout
    generation: int
    shard_of_seq: np.ndarray  # (max seq + 1,) int16: the shard of each influencer's seq

    def search(
        self, xq: np.ndarray, wanted: list[int], filters: Filters, brand_posts: Sequence[np.ndarray | None] | None
    ) -> tuple[list[Ranked], list[Scored]]:
        answers = self.fanout(lambda _, c: c.search(self.generation, xq, wanted, filters, brand_posts))
        parts = [a[0] for a in answers]
        known: list[Scored] = [{} for _ in wanted]
        for _, scored in answers:
            for q, s in enumerate(scored):
                known[q] |= s
        out: list[Ranked] = []
        for q, n in enumerate(wanted):
            seqs = np.concatenate([p[q][0] for p in parts])
            scores = np.concatenate([p[q][1] for p in parts])
            held = seqs < len(self.shard_of_seq)
            held[held] = self.shard_of_seq[seqs[held]] >= 0  # a shard that loaded before a delete the ingress saw
            seqs, scores = seqs[held], scores[held]
            order = np.argsort(-scores, kind="stable")[:n]
            out.append((seqs[order], scores[order]))
        return out, known

    def rerank(
        self, brand_posts: list[np.ndarray], candidates: list[np.ndarray], known: Sequence[Scored] | None = None
    ) -> list[Ranked]:
        """Each query's candidates ordered as ``rerank`` orders them (by score, ties and the
        unscored (-inf, last) in the order of the candidates); the shards score those that
        ``known`` lacks (none, when the search brought them all)."""
        known = known or [{} for _ in candidates]
        missing = [
            np.asarray([s for s in c.tolist() if s not in k], np.int64) for c, k in zip(candidates, known, strict=True)
        ]
        owner = [self.shard_of_seq[m] for m in missing]
        which = sorted({int(s) for o in owner for s in np.unique(o)})

        def mine(i: int, c: ShardClient) -> list[Ranked]:
            return c.rerank(self.generation, brand_posts, [m[o == i] for m, o in zip(missing, owner, strict=True)])

        scored = self.fanout(mine, which) if which else []
        out: list[Ranked] = []
        for q, cand in enumerate(candidates):
            score = dict(known[q])
            score |= {int(s): float(v) for part in scored for s, v in zip(*part[q], strict=True)}
            sc = np.array([score.get(int(s), -np.inf) for s in cand], np.float32)
            order = np.argsort(-sc, kind="stable")
            out.append((np.asarray(cand, np.int64)[order], sc[order]))
        return out

    def post_vectors(self, seqs: np.ndarray) -> dict[int, np.ndarray]:
        seqs = np.asarray(seqs, np.int64)
        owner = self.shard_of_seq[seqs]
        which = sorted({int(s) for s in np.unique(owner)})
        out: dict[int, np.ndarray] = {}
        for part in self.fanout(lambda i, c: c.post_vectors(self.generation, seqs[owner == i]), which):
            out |= part
        return out


class ShardedEngine(Engine):
    """The ingress: an ``Engine`` whose snapshot holds the influencer table, the head and the
    filters' columns, but no account vector: ``retrieve`` reaches the shards through it.
    Everything else (brand vectors, feedback, hits and their decoration) is read from
    PostgreSQL, as a single process does."""

    def __init__(self, settings: Settings, clients: Sequence[ShardClient], pool: StorePool | None = None):
        self.fanout = Fanout(clients)
        super().__init__(settings, pool)

    def close(self) -> None:
        self.fanout.close()
        super().close()

    def _loader(self) -> SnapshotLoader:
        return IngressLoader(self.settings, self.pool, self.ids, self.fanout)

    def check_filters(self, snap: Snapshot, filters: Filters) -> None:
        """As a single process refuses them: an unknown category, metric bounds before any
        metrics are computed (each shard then selects among its own accounts)."""
        filters.category_code(snap.table)
        if filters.bounds.active:
            check_computed(snap.metrics, filters.bounds)

    def shard_health(self) -> list[ShardHealth | str]:
        """Each shard's health, or why it cannot say."""

        def one(_: int, c: ShardClient) -> ShardHealth | str:
            try:
                return c.health()
            except Exception as e:  # noqa: BLE001 (reported, per shard)
                return f"{type(e).__name__}: {e}"

        return self.fanout(one)


class IngressLoader(SnapshotLoader):
    """The ingress's snapshot: the table, the head and the filter columns, an empty index of
    the shards' shape (what ``retrieve`` asks of an index) and the ``Shards`` to reach."""

    def __init__(self, settings: Settings, pool: StorePool, ids: ModelIds, fanout: Fanout):
        super().__init__(settings, pool, ids)
        self.fanout = fanout

    def index(self, pub: Publication, space: str, model: str, previous: Snapshot | None) -> VectorIndex:
        shards = pub.shards.get(space, ())
        n = len(self.fanout.clients)
        if len(shards) != n:
            raise NotPublished(
                f"{n} shards of {space!r} are not published ({len(shards)} are):"
                f" run `congruence shards build --shards {n}`"
            )
        first = shards[0]
        # one HNSW shard on 8-bit codes: the candidates of all are re-scored exactly from
        # PostgreSQL, as one such index's are; IVF-PQ shards re-score their own, from their
        # vectors on disk (8 or 16 bits, CONGRUENCE_SHARD_REFINE_BITS: ``indexer.ivf``)
        kind, codec = ("hnsw", "sq8") if any(p.codec == "sq8" for p in shards) else ("flat", "float32")
        return VectorIndex(first.dim, kind, codec, first.post_dim)  # empty: the shards hold the accounts

    def load(self, previous: Snapshot | None) -> Snapshot:
        snap = super().load(previous)
        n = len(self.fanout.clients)
        seq, ids = snap.table.seq, snap.table.ids
        owner = np.full(int(seq.max()) + 1 if len(seq) else 1, -1, np.int16)
        known = previous.shards.shard_of_seq if previous is not None and isinstance(previous.shards, Shards) else None
        new = np.arange(len(seq))
        if known is not None:  # an account's shard never changes: hash only the accounts new since
            had = seq < len(known)
            owner[seq[had]] = known[seq[had]]
            new = np.flatnonzero(owner[seq] < 0)
        owner[seq[new]] = [shard_of(ids[int(r)], n) for r in new]
        return replace(snap, live=None, shards=Shards(self.fanout, snap.generation, owner))
