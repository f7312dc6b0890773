"""Batched ranking for exports: many brands through FAISS at once, then the head's rerank.

Gives, brand for brand, what ``Engine.match_brand`` gives: the same FAISS call per query
(``n = max(k, candidates)`` with a head in service, else ``k``; one mask for the whole job)
and the same rerank (the head's score over the per-post vectors the index holds in memory;
candidates without them last). What changes is the plumbing: one query-vector fetch and one
FAISS search per batch of brands, and the head scores the batch's candidate lists several
brands per forward pass (``rerank_batch.score_lists``) instead of one brand a call. Scores
agree with the per-brand path up to float rounding (~1e-6: a batched exact FAISS search or
matrix product may sum in another order, which can swap two candidates tied that closely).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.search.engine import Engine, Snapshot
from congruence.search.filters import Filters
from congruence.search.rerank import _one_thread
from congruence.search.rerank_batch import score_lists

NO_VECTORS = "no embedded posts to match on"


@dataclass(frozen=True)
class RankedRows:
    """One batch's results, columnar, brand by brand in input order, best first.

    brand_ids, rows (int64 positions in the snapshot's influencer table), scores
    (float64; -inf for a candidate the head could not score, as in ``match_brand``) and
    ranks (int32, from 1) are aligned. skipped: (brand id, reason) of brands with no rows.
    """

    brand_ids: list[str]
    rows: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    skipped: tuple[tuple[str, str], ...]


class BatchRanker:
    """Ranks batches of brands against one engine snapshot (read only) and one filter."""

    def __init__(self, engine: Engine, k: int, filters: Filters):
        snap: Snapshot = engine.current()
        self.snap, self.k, self.vstore, self.lock = snap, k, engine.vstore, engine._lock
        self.mask = filters.mask(snap.table, snap.index)
        self.n = max(k, engine.settings.candidates) if snap.head is not None else k
        max_seq = int(snap.table.seq.max()) if len(snap.table.seq) else 0
        self.row_of = np.full(max_seq + 1, -1, np.int64)
        self.row_of[snap.table.seq] = np.arange(len(snap.table.seq))
        self.posts = snap.index.posts if snap.head is not None else None

    def rank(self, brands: Sequence[str]) -> RankedRows:
        """Top-k of each brand (ids of brands in the store, no duplicates)."""
        snap = self.snap
        with self.lock:
            _, got_ids, vecs = self.vstore.account_vectors(snap.space, ids=list(brands))
            brand_posts = self.vstore.post_vectors(snap.space, ids=list(brands)) if self.posts is not None else {}
        where = {b: i for i, b in enumerate(got_ids)}
        ranked = [b for b in brands if b in where]
        skipped = tuple((b, NO_VECTORS) for b in brands if b not in where)
        if not ranked:
            return _empty(skipped)
        Q = vecs[[where[b] for b in ranked]]
        D, L = snap.index.search(Q, self.n, allowed=self.mask)  # one FAISS call for the whole batch
        hits = [(L[i][L[i] >= 0], D[i][L[i] >= 0].astype(np.float64)) for i in range(len(ranked))]
        if self.posts is None:
            return _rows(ranked, [(s[: self.k], c[: self.k]) for s, c in hits], self.row_of, skipped)
        # the head reranks the batch several brands per forward pass, one thread as rerank
        # does (two threads measured no faster on 2 busy cores)
        with _one_thread():
            parts = self._rerank([brand_posts.get(b) for b in ranked], hits)
        return _rows(ranked, parts, self.row_of, skipped)

    def _rerank(self, brand_posts: list[np.ndarray | None],
                hits: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each brand's top k, as ``rerank`` orders them: head scores best first (ties keep
        the FAISS order), candidates without per-post vectors after them, unscored (-inf);
        a brand without per-post vectors keeps its FAISS order and cosines."""
        assert self.posts is not None and self.snap.head is not None
        parts: list[tuple[np.ndarray, np.ndarray]] = [(s[: self.k], c[: self.k]) for s, c in hits]
        todo = []  # (brand, its posts, scorable seqs, their positions, the others)
        for i, ((seqs, _), posts) in enumerate(zip(hits, brand_posts, strict=True)):
            if posts is None:
                continue
            pos = self.snap.index.positions(seqs)
            have = (pos >= 0) & (self.posts.count[np.maximum(pos, 0)] > 0)
            if have.any():
                todo.append((i, posts, seqs[have], pos[have], seqs[~have]))
            else:
                parts[i] = (seqs[: self.k], np.full(min(len(seqs), self.k), -np.inf))
        width = int(self.posts.count.max()) if len(self.posts.count) else 1
        scores, _ = score_lists(self.snap.head, [t[1] for t in todo], [t[3] for t in todo], self.posts.padded,
                                width)
        for (i, _, scorable, _, rest), sc in zip(todo, scores, strict=True):
            order = np.argsort(-sc, kind="stable")
            parts[i] = (np.concatenate([scorable[order], rest])[: self.k],
                        np.concatenate([sc[order].astype(np.float64), np.full(len(rest), -np.inf)])[: self.k])
        return parts


def _rows(brands: list[str], parts: list[tuple[np.ndarray, np.ndarray]], row_of: np.ndarray,
          skipped: tuple[tuple[str, str], ...]) -> RankedRows:
    lengths = [len(s) for s, _ in parts]
    brand_ids = [b for b, n in zip(brands, lengths, strict=True) for _ in range(n)]
    seqs = np.concatenate([s for s, _ in parts]).astype(np.int64)
    scores = np.concatenate([c for _, c in parts]).astype(np.float64)
    ranks = np.concatenate([np.arange(1, n + 1, dtype=np.int32) for n in lengths])
    return RankedRows(brand_ids, row_of[seqs], scores, ranks, skipped)


def _empty(skipped: tuple[tuple[str, str], ...]) -> RankedRows:
    return RankedRows([], np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int32), skipped)
