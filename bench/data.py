"""Seeded synthetic influencer vectors and attributes, exact ground truth and recall.

Vectors have the production width (1664 = 1280 image + 384 text) and a clustered,
low intrinsic dimension, like pooled embeddings: a point is its cluster centre plus
Gaussian spread in a ``latent``-dimensional space, mapped to ``d`` dimensions by a fixed
random projection, plus a little isotropic noise, then L2-normalised. Categories and
follower counts are drawn independently of the vectors, so filters do not follow the
geometry (the hard case for a filtered graph search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from congruence.indexer.store import AccountTable
from congruence.search.filters import Filters

D_PRODUCTION = 1280 + 384
# category shares chosen so that category + micro (5k..100k followers, ~43% of a
# log-uniform 1k..1M) passes about 10% ("fitness") and about 1% ("food")
CATEGORY_SHARES = {"fitness": 0.23, "food": 0.023, "travel": 0.2, "pets": 0.2, "fashion": 0.2, "tech": 0.127}
FILTERS: dict[str, Filters | None] = {
    "none": None,
    "fitness+micro (~10%)": Filters.make(category="fitness", micro=True),
    "food+micro (~1%)": Filters.make(category="food", micro=True),
}


@dataclass(frozen=True)
class Influencers:
    """xb: (nb, d) and xq: (nq, d) float32, L2-normalised rows; table: nb accounts, seq = row."""

    xb: np.ndarray
    xq: np.ndarray
    table: AccountTable


def clustered(n: int, d: int, rng: np.random.Generator, centres: np.ndarray, proj: np.ndarray,
              spread: float = 0.6, noise: float = 0.15) -> np.ndarray:
    """(n, d) float32, L2-normalised rows around ``centres`` (c, latent) mapped by ``proj``."""
    out = np.empty((n, d), np.float32)
    for i in range(0, n, 20_000):  # chunks keep the float64 temporaries small
        m = min(20_000, n - i)
        z = centres[rng.integers(0, len(centres), m)] + spread * rng.standard_normal((m, centres.shape[1]))
        x = (z @ proj).astype(np.float32) + noise * rng.standard_normal((m, d), dtype=np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def influencers(nb: int, nq: int, d: int = D_PRODUCTION, seed: int = 0, n_clusters: int = 64,
                latent: int = 32) -> Influencers:
    """A seeded synthetic population of ``nb`` influencers and ``nq`` query vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, latent))
    proj = rng.standard_normal((latent, d)) / np.sqrt(latent)
    xb = clustered(nb, d, rng, centres, proj)
    xq = clustered(nq, d, rng, centres, proj)
    names = list(CATEGORY_SHARES)
    p = np.array([CATEGORY_SHARES[c] for c in names])
    cats = rng.choice(len(names), nb, p=p / p.sum())
    followers = (10 ** rng.uniform(3.0, 6.0, nb)).astype(np.int64)
    ids = [f"inf{i}" for i in range(nb)]
    table = AccountTable(seq=np.arange(nb, dtype=np.int64), ids=ids, handles=ids,
                         categories=[names[c] for c in cats], followers=followers)
    return Influencers(xb, xq, table)


def ground_truth(xq: np.ndarray, xb: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """(nq, k) positions of the exact top-k inner products, restricted to ``allowed``."""
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
