"""Engagement labels and the pairwise metric, as free functions over numpy arrays.

Arrays: ``likes`` (n,) like counts, ``groups`` (n,) int account index of each post,
``pred`` (n,) any score where higher means more expected attention.
"""

from __future__ import annotations

import math

import numpy as np

MAD_SCALE = 1.4826  # MAD of a normal distribution is 0.6745 sigma
MEAN_AD_SCALE = 1.2533  # mean absolute deviation of a normal is 0.7979 sigma
Z_CLIP = 3.0
# held-out pairwise accuracy for scale: Imagion's model, an expert and an average person
REFERENCE = {"imagion_model": 0.5024, "expert": 0.675, "average_person": 0.475}


def _group_slices(groups: np.ndarray) -> list[np.ndarray]:
    """Indices of each group's posts, groups in order of first appearance."""
    g = np.asarray(groups)
    _, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    idx = rank[inverse.ravel()]
    sort = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[sort], np.arange(len(order) + 1))
    return [sort[bounds[i] : bounds[i + 1]] for i in range(len(order))]


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 * MAD), clipped to ±3; float64.

    When the MAD is 0 (over half the values equal) the mean absolute deviation from the
    median stands in (× 1.2533); when that is 0 too every z is 0.
    """
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return x
    med = np.median(x)
    dev = np.abs(x - med)
    scale = MAD_SCALE * np.median(dev)
    if scale <= 0:
        scale = MEAN_AD_SCALE * dev.mean()
    if scale <= 0:
        return np.zeros_like(x)
    return np.clip((x - med) / scale, -Z_CLIP, Z_CLIP)


def engagement_z(likes: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(n,) robust z-score of log(1 + likes) within each post's account (see ``robust_z``).

    Logs first: like counts are heavy-tailed, and a ratio (twice the usual) means the same
    for an account with 100 likes a post as for one with 10,000.
    """
    logl = np.log1p(np.maximum(np.asarray(likes, np.float64), 0.0))
    z = np.zeros(len(logl), np.float64)
    for idx in _group_slices(groups):
        z[idx] = robust_z(logl[idx])
    return z


def z_to_score(z: np.ndarray | float) -> np.ndarray:
    """The 0-10 scale: 10 Φ(z), the share (in tenths) of an account's posts this one beats
    if the account's log-likes were normal. z = 0 (a typical post) is 5."""
    zz = np.asarray(z, np.float64)
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 5.0 * (1.0 + erf(zz / math.sqrt(2.0)))


def within_pairs(groups: np.ndarray, likes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of every pair of posts of one account with likes[i] > likes[j]."""
    lk = np.asarray(likes, np.float64)
    ii, jj = [], []
    for idx in _group_slices(groups):
        if len(idx) < 2:
            continue
        a, b = np.meshgrid(idx, idx, indexing="ij")
        keep = lk[a] > lk[b]
        ii.append(a[keep])
        jj.append(b[keep])
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)


def pairwise_accuracy(pred: np.ndarray, likes: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """(accuracy, n_pairs) over pairs of posts of one account with different likes.

    A pair counts 1 when ``pred`` ranks the more-liked post higher, 0.5 when ``pred`` ties,
    0 otherwise (Imagion's protocol; ties at 0.5 make a constant predictor score 0.5).
    Pairs with equal likes have no right answer and are left out. NaN when there are none.
    """
    i, j = within_pairs(groups, likes)
    if len(i) == 0:
        return float("nan"), 0
    p = np.asarray(pred, np.float64)
    d = p[i] - p[j]
    hits = (d > 0).sum() + 0.5 * (d == 0).sum()
    return float(hits / len(i)), len(i)
