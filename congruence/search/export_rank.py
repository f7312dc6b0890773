"""Batched ranking for exports: many brands through FAISS at once, then the head's rerank.

Gives, brand for brand, what ``Engine.match_brand`` gives: the same FAISS call per query
(``n = max(k, candidates)`` with a head in service, else ``k``; one mask for the whole job)
and the same rerank, scored by ``CongruenceHead.score_candidates`` on the same padded
inputs (the per-post vectors the index holds in memory). What changes is the plumbing:
one query-vector fetch and one FAISS search per batch. Scores agree with the per-brand path up to float rounding (a batched exact
FAISS search may round a cosine differently in the last bit, which can swap two
candidates tied to ~1e-7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from congruence.search.engine import Engine, Snapshot
from congruence.search.filters import Filters
from congruence.search.rerank import _one_thread

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
        D, L = snap.index.search(Q, self.n, allowed=self.mask)

        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            ok = L[i] >= 0
            seqs, cos = L[i][ok], D[i][ok].astype(np.float64)
            posts = brand_posts.get(ranked[i])
            return self._rerank(posts, seqs) if posts is not None else (seqs[: self.k], cos[: self.k])

        # as rerank does: each small forward pass on one thread, so the same ops round the
        # same way as in match_brand (two threads scoring two brands at once measured no
        # faster on 2 busy cores)
        with _one_thread():
            parts = [one(i) for i in range(len(ranked))]
        return _rows(ranked, parts, self.row_of, skipped)

    def _rerank(self, brand_posts: np.ndarray, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As ``rerank``: head scores best first (ties keep FAISS order), unscorable ones last."""
        assert self.posts is not None and self.snap.head is not None
        pos = self.snap.index.positions(seqs)
        have = (pos >= 0) & (self.posts.count[np.maximum(pos, 0)] > 0)
        scorable, rest = seqs[have], seqs[~have]
        if len(scorable):
            cands, mask = self.posts.padded(pos[have])
            scores = self.snap.head.score_candidates(brand_posts, torch.from_numpy(cands), torch.from_numpy(mask))
        else:
            scores = np.zeros(0, np.float32)
        order = np.argsort(-scores, kind="stable")
        out_seqs = np.concatenate([scorable[order], rest])[: self.k]
        out_scores = np.concatenate([scores[order].astype(np.float64), np.full(len(rest), -np.inf)])[: self.k]
        return out_seqs, out_scores


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
