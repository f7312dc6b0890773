"""Collaborative evidence as a ranking signal (docs/collaborations.md): who a brand's known
partners worked with, set against who each candidate worked with.

Item-item co-occurrence over the graph's handles: a handle's weight is how many of the brand's
known partners worked with it (tagged it, were sponsored by it, or are its known match), over
the square root of how many influencers did (a popularity correction: everyone tags the big
brands); a candidate's score is the sum of the weights of the handles it worked with. The brand's
own handles weigh nothing, so the score says "works with the brands my partners work with", not
"already worked with me". The exponent 0.5 was chosen on training brands (bench ``warm-start``
and docs/collaborations.md: 0, 0.5 and 1 on the brand side, 0, 0.5 and 1 on the candidate side;
implicit ALS with 32 and 64 factors did no better and needs retraining whenever the graph moves).

Shard-local by construction: the weights are a function of the partners' edges alone, so an
ingress computes them once and any holder of some candidates' edges scores those candidates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from congruence.store.collab_index import CollabIndex
from congruence.store.records import Store

EVIDENCE_KINDS = ("tag", "sponsor", "match")
HANDLE_POWER = 0.5  # a handle's weight: partners with it / (influencers with it) ** HANDLE_POWER
COLLAB_CANDIDATES = 200  # the best-scored by the graph alone join a query's candidates


@dataclass(frozen=True)
class Partners:
    """A query's known partners: table rows (matches, creators who tagged the brand, liked
    influencers, ``similar``'s seeds), the handles that are the brand itself (weigh nothing), and
    the brand's category ("": unknown, or no brand; the cold-start blend needs it)."""

    rows: np.ndarray
    own: tuple[str, ...] = ()
    category: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", np.unique(np.asarray(self.rows, np.int64)))

    def __len__(self) -> int:
        return len(self.rows)


class CollabSignal:
    """The graph of one snapshot as a (rows x handles) 0/1 matrix of evidence edges."""

    def __init__(self, ci: CollabIndex):
        self.ci = ci
        keep = ci.edge_mask(EVIDENCE_KINDS)
        n, h = len(ci), len(ci.handles)
        m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (ci.rows[keep], ci.handle[keep])), shape=(n, h))
        m.sum_duplicates()
        m.data[:] = 1.0  # a match and a tag of one brand are one collaboration
        self.matrix = m
        self.by_handle = m.T.tocsr()
        self.handle_degree = np.asarray(m.sum(0)).ravel()
        self.degree = np.diff(m.indptr)  # distinct handles each row worked with

    def weights(self, partners: Partners) -> np.ndarray:
        """(handles,) each handle's weight for a brand with these ``partners``."""
        w = np.asarray(self.matrix[partners.rows].sum(0)).ravel() if len(partners) else np.zeros(self.matrix.shape[1])
        own = self.ci.codes(partners.own)
        w[own] = 0.0
        nz = w > 0
        w[nz] /= self.handle_degree[nz] ** HANDLE_POWER
        return w

    def scores(self, w: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) every row's score (or (len(rows),) of ``rows``) under handle weights ``w``."""
        m = self.matrix if rows is None else self.matrix[np.asarray(rows, np.int64)]
        return np.asarray(m @ w, np.float64).ravel()

    def best(
        self, w: np.ndarray, n: int, allowed: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        """Up to ``n`` rows with a positive score, best first, reading only the rows that share a
        weighted handle (``allowed``: a (rows,) bool mask, or a function giving some rows' mask)."""
        hs = np.flatnonzero(w)
        if not len(hs):
            return np.zeros(0, np.int64)
        sub = self.by_handle[hs]
        rows = np.unique(sub.indices).astype(np.int64)
        if allowed is not None:
            rows = rows[allowed(rows) if callable(allowed) else allowed[rows]]
        if not len(rows):
            return rows
        s = self.scores(w, rows)
        order = np.lexsort((rows, -s))[:n]
        return rows[order[s[order] > 0]]

    def propensity(self, rows: np.ndarray) -> np.ndarray:
        """How many distinct handles each of ``rows`` worked with."""
        return self.degree[np.asarray(rows, np.int64)].astype(np.float64)


@functools.lru_cache(maxsize=2)  # the snapshot in service, and the one before it while it answers
def signal_of(ci: CollabIndex) -> CollabSignal:
    """One ``CollabSignal`` per snapshot graph (built on first use)."""
    return CollabSignal(ci)


def partner_rows(ci: CollabIndex, own: Sequence[str]) -> np.ndarray:
    """Rows that worked with the brand whose handles are ``own`` (tagged it, were sponsored by
    it, or are its known match)."""
    return np.flatnonzero(ci.with_any(own, EVIDENCE_KINDS))


def own_handles(store: Store, brand_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Brand id -> the handles that are the brand (the normal form of its handle and of its id)."""
    return {b: own for b, (own, _) in brand_identities(store, brand_ids).items()}


def brand_identities(store: Store, brand_ids: Sequence[str]) -> dict[str, tuple[tuple[str, ...], str]]:
    """Brand id -> (its handles, as ``own_handles``; its category, "" when unknown), in one
    read: a match asks it of every brand, before any other work."""
    rows = store.conn.execute(
        "SELECT id, collab_handle(handle), collab_handle(id), coalesce(category, '') FROM accounts WHERE id = ANY(%s)",
        (list(brand_ids),),
    )
    return {str(b): (tuple(dict.fromkeys((h, i))), str(c)) for b, h, i, c in rows}


def brand_partners(ci: CollabIndex, own: tuple[str, ...], category: str = "") -> Partners:
    """The known partners of the brand whose handles are ``own`` (of ``category``)."""
    return Partners(partner_rows(ci, own), own, category)
