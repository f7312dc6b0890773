"""Seeded synthetic vectors for index tests and benchmarks, after faiss ``contrib/datasets``.

``SyntheticDataset(d, nb, nq, seed)`` holds ``xb`` (database) and ``xq`` (queries), and
``get_groundtruth(k)`` is their exact top-k by brute force. The vectors are clustered, with a
low intrinsic dimension, like pooled embeddings, so an HNSW graph meets the structure it meets
in production: a point is its cluster centre plus Gaussian spread in a ``latent``-dimensional
space, mapped to ``d`` dimensions by a fixed random projection, plus a little isotropic
noise, then L2-normalised.

``influencers`` adds account attributes for the benchmarks: categories and follower counts
drawn independently of the vectors, so filters do not follow the geometry (the hard case for
a filtered graph search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from congruence.store.rows import AccountTable

D_PRODUCTION = 1280 + 384
# category shares chosen so that category + micro (5k..100k followers, ~43% of a
# log-uniform 1k..1M) passes about 10% ("fitness") and about 1% ("food")
CATEGORY_SHARES = {"fitness": 0.23, "food": 0.023, "travel": 0.2, "pets": 0.2, "fashion": 0.2, "tech": 0.127}


def clustered(
    n: int,
    d: int,
    rng: np.random.Generator,
    centres: np.ndarray,
    proj: np.ndarray,
    spread: float = 0.6,
    noise: float = 0.15,
) -> np.ndarray:
    """(n, d) float32, L2-normalised rows around ``centres`` (c, latent) mapped by ``proj`` (latent, d)."""
    out = np.empty((n, d), np.float32)
    for i in range(0, n, 20_000):  # chunks keep the float64 temporaries small
        m = min(20_000, n - i)
        z = centres[rng.integers(0, len(centres), m)] + spread * rng.standard_normal((m, centres.shape[1]))
        x = (z @ proj).astype(np.float32) + noise * rng.standard_normal((m, d), dtype=np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


class SyntheticDataset:
    """``xb`` (nb, d) and ``xq`` (nq, d): float32, L2-normalised rows from one seeded cluster
    geometry; the same arguments give the same arrays."""

    def __init__(
        self,
        d: int,
        nb: int,
        nq: int,
        seed: int = 0,
        *,
        n_clusters: int = 64,
        latent: int = 32,
        spread: float = 0.6,
        noise: float = 0.15,
    ):
        self.d, self.nb, self.nq, self.seed = d, nb, nq, seed
        self.spread, self.noise = spread, noise
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((n_clusters, latent))
        self.proj = rng.standard_normal((latent, d)) / np.sqrt(latent)
        self.xb = self.sample(nb, rng)
        self.xq = self.sample(nq, rng)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, d) more points of the same clusters, drawn with ``rng`` (for data made in chunks)."""
        return clustered(n, self.d, rng, self.centres, self.proj, self.spread, self.noise)

    def get_groundtruth(self, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """(nq, k) rows of ``xb`` with the largest inner products with each query, best first,
        by brute force; only rows where ``allowed`` (nb,) is True, when given."""
        return ground_truth(self.xq, self.xb, k, allowed)

    def __repr__(self) -> str:
        return f"SyntheticDataset(d={self.d}, nb={self.nb}, nq={self.nq}, seed={self.seed})"


def ground_truth(xq: np.ndarray, xb: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """(nq, k) positions in ``xb`` of the exact top-k inner products, restricted to ``allowed``.

    In blocks of 256 queries, so a million database rows need no more than a block's scores.
    """
    idx = np.arange(len(xb)) if allowed is None else np.flatnonzero(allowed)
    sub = xb[idx]
    out = np.empty((len(xq), k), np.int64)
    for i in range(0, len(xq), 256):
        s = xq[i : i + 256] @ sub.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        out[i : i + 256] = idx[np.take_along_axis(part, order, axis=1)]
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` that appears in the same row of ``found``."""
    k = truth.shape[1]
    hits = [len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / k if hits else float("nan")


@dataclass(frozen=True)
class Influencers:
    """xb: (nb, d) and xq: (nq, d) float32, L2-normalised rows; table: nb accounts, seq = row."""

    xb: np.ndarray
    xq: np.ndarray
    table: AccountTable


def influencers(
    nb: int, nq: int, d: int = D_PRODUCTION, seed: int = 0, n_clusters: int = 64, latent: int = 32
) -> Influencers:
    """A seeded synthetic population of ``nb`` influencers and ``nq`` query vectors."""
    ds = SyntheticDataset(d, nb, nq, seed, n_clusters=n_clusters, latent=latent)
    rng = np.random.default_rng([seed, 1])  # attributes: a stream of their own, apart from the vectors
    names = list(CATEGORY_SHARES)
    p = np.array([CATEGORY_SHARES[c] for c in names])
    cats = rng.choice(len(names), nb, p=p / p.sum())
    followers = (10 ** rng.uniform(3.0, 6.0, nb)).astype(np.int64)
    ids = [f"inf{i}" for i in range(nb)]
    table = AccountTable(
        seq=np.arange(nb, dtype=np.int64),
        ids=ids,
        handles=ids,
        categories=[names[c] for c in cats],
        followers=followers,
    )
    return Influencers(ds.xb, ds.xq, table)
