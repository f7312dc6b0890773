"""Batched ranking for exports: many brands through FAISS at once, then the head's rerank.

Gives, brand for brand, what ``Engine.match_brand`` gives: the same FAISS call per query
(``n = max(k, candidates)`` with a head in service, else ``k``; one mask for the whole job)
and the same rerank, scored by ``CongruenceHead.score_candidates`` on the same padded
inputs. What changes is the plumbing: one query-vector fetch, one FAISS search per batch,
and influencers' per-post vectors fetched once per job into a ``PostBank`` instead of once
per query. Scores agree with the per-brand path up to float rounding (a batched exact
FAISS search may round a cosine differently in the last bit, which can swap two
candidates tied to ~1e-7).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from congruence.indexer.vector_store import VectorStore
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


class PostBank:
    """Influencers' per-post vectors in one space, float16, fetched once and kept.

    Stored CSR-style in one growing (n_posts, d) array, so a candidate list is gathered into
    a padded tensor with one fancy index. ``count[seq]`` is -1 for an account whose per-post
    vectors are missing (the head cannot score it), and 0 until fetched (``known``).
    """

    def __init__(self, vstore: VectorStore, space: str, dim: int, seq_of: dict[str, int], max_seq: int,
                 lock: threading.RLock):
        self.vstore, self.space, self.dim, self.seq_of, self.lock = vstore, space, dim, seq_of, lock
        self.start = np.zeros(max_seq + 1, np.int64)
        self.count = np.zeros(max_seq + 1, np.int64)
        self.known = np.zeros(max_seq + 1, bool)
        self.data = np.zeros((1024, dim), np.float16)
        self.n = 1  # row 0 stays zeros: the padding every gather points at

    def ensure(self, seqs: np.ndarray) -> int:
        """Fetch the per-post vectors of ``seqs`` not fetched yet; returns how many accounts."""
        seqs = np.unique(seqs[seqs >= 0])
        missing = seqs[~self.known[seqs]]
        if len(missing) == 0:
            return 0
        with self.lock:
            got = self.vstore.post_vectors(self.space, seqs=missing.tolist())
        need = self.n + sum(len(v) for v in got.values())
        if need > len(self.data):
            grown = np.zeros((max(need, 2 * len(self.data)), self.dim), np.float16)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.known[missing] = True
        self.count[missing] = -1
        for account_id, vecs in got.items():
            s = self.seq_of[account_id]
            self.start[s], self.count[s] = self.n, len(vecs)
            self.data[self.n : self.n + len(vecs)] = vecs  # float16 -> float32 -> float16 is exact
            self.n += len(vecs)
        return len(missing)

    def padded(self, seqs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, P, d) float32 zero-padded per-post vectors + (C, P) mask, as ``pad_sets`` makes them.

        Every seq must have vectors (``count > 0``); P = the largest post count, at least 1.
        """
        counts = self.count[seqs]
        width = max(1, int(counts.max()) if len(counts) else 1)
        cols = np.arange(width)
        mask = cols[None, :] < counts[:, None]
        rows = torch.from_numpy(np.where(mask, self.start[seqs][:, None] + cols[None, :], 0).ravel())
        # index_select + float(): ~10x faster than numpy's take + astype or torch's [] on float16
        out = torch.from_numpy(self.data).index_select(0, rows).float()
        return out.reshape(len(seqs), width, self.dim), torch.from_numpy(mask)


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
        self.bank: PostBank | None = None
        if snap.head is not None:
            seq_of = {a: int(s) for a, s in zip(snap.table.ids, snap.table.seq, strict=True)}
            self.bank = PostBank(engine.vstore, snap.space, snap.head.config.d_model, seq_of, max_seq, engine._lock)

    def rank(self, brands: Sequence[str]) -> RankedRows:
        """Top-k of each brand (ids of brands in the store, no duplicates)."""
        snap = self.snap
        with self.lock:
            _, got_ids, vecs = self.vstore.account_vectors(snap.space, ids=list(brands))
            brand_posts = self.vstore.post_vectors(snap.space, ids=list(brands)) if self.bank else {}
        where = {b: i for i, b in enumerate(got_ids)}
        ranked = [b for b in brands if b in where]
        skipped = tuple((b, NO_VECTORS) for b in brands if b not in where)
        if not ranked:
            return _empty(skipped)
        Q = vecs[[where[b] for b in ranked]]
        D, L = snap.index.search(Q, self.n, allowed=self.mask)
        if self.bank is not None:
            self.bank.ensure(L.ravel())

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
        assert self.bank is not None and self.snap.head is not None
        have = self.bank.count[seqs] > 0
        scorable, rest = seqs[have], seqs[~have]
        if len(scorable):
            cands, mask = self.bank.padded(scorable)
            scores = self.snap.head.score_candidates(brand_posts, cands, mask)
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
