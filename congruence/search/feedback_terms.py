"""Relevance feedback's vector math: the four terms a candidate is scored by, combined in one
place (``weighted_terms``), and the Rocchio move of the query. Their weights are
``feedback.FeedbackParams``; ``feedback`` resolves ids and builds the ``Marked`` these read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from congruence.core.vectors import l2_normalize

if TYPE_CHECKING:
    from congruence.search.feedback import Marked


def rocchio(
    xq: np.ndarray, liked: np.ndarray, disliked: np.ndarray, like_weight: float, dislike_weight: float
) -> np.ndarray:
    """(d,) L2-normalised ``xq + b * mean(liked) - c * mean(disliked)`` (SMART, alpha = 1); an
    empty side adds nothing. xq: (d,) L2-normalised; liked, disliked: (n, d) L2-normalised."""
    q = np.asarray(xq, np.float64).copy()
    if len(liked):
        q += like_weight * np.asarray(liked, np.float64).mean(axis=0)
    if len(disliked):
        q -= dislike_weight * np.asarray(disliked, np.float64).mean(axis=0)
    return l2_normalize(q.astype(np.float32))


def seeds_query(seeds: np.ndarray) -> np.ndarray:
    """(d,) L2-normalised centroid of several influencers' (n, d) vectors: its inner product
    with an influencer is proportional to the mean cosine to the seeds (look-alikes of a set)."""
    return l2_normalize(np.asarray(seeds, np.float64).mean(axis=0).astype(np.float32))


@dataclass(frozen=True)
class Candidates:
    """The accounts the terms score: (n, d) float64 vectors in the snapshot's space; their
    (n, dc) vectors in ``CONTENT_SPACE`` or None; which rows have one there (None: all)."""

    vecs: np.ndarray
    content: np.ndarray | None = None
    has_content: np.ndarray | None = None


def closest_liked(m: Marked, c: Candidates) -> np.ndarray:
    """(n,) the cosine to the closest liked influencer (or example), ``_closest`` across spaces."""
    return _closest(m.liked, m.liked_content, m.params.like_content, c) if len(m.liked) else np.zeros(len(c.vecs))


def closest_disliked(m: Marked, c: Candidates) -> np.ndarray:
    """(n,) the cosine to the closest disliked influencer, ``_closest`` across spaces."""
    if not len(m.disliked):
        return np.zeros(len(c.vecs))
    return _closest(m.disliked, m.disliked_content, m.params.dislike_content, c)


def accumulated_dislikes(m: Marked, c: Candidates) -> np.ndarray:
    """(n,) once something is liked, ``accumulate * sum_d exp((cos(v, d) - 1) / width)``: a push
    strong only close to each disliked one, so a niche disliked again and again goes away."""
    if not len(m.liked) or not len(m.disliked):
        return np.zeros(len(c.vecs))
    sims = c.vecs @ np.asarray(m.disliked, np.float64).T
    return m.params.accumulate * np.exp((sims - 1.0) / m.params.width).sum(axis=1)


def separation(m: Marked, c: Candidates) -> np.ndarray:
    """(n,) once both sides have someone (and both weights count), where each candidate lies
    along what tells the liked from the disliked in the pooled space (``ridge_separation``)."""
    p, none = m.params, np.zeros(len(c.vecs))
    if not (len(m.liked) and len(m.disliked) and p.like_weight and p.dislike_weight):
        return none
    if m.pooled:
        return ridge_separation(c.vecs, m.liked, m.disliked, p.ridge)
    if c.content is None or m.liked_content is None or m.disliked_content is None:
        return none
    sep = ridge_separation(np.asarray(c.content, np.float64), m.liked_content, m.disliked_content, p.ridge)
    return sep if c.has_content is None else np.where(c.has_content, sep, 0.0)


def weighted_terms(m: Marked, c: Candidates) -> np.ndarray:
    """(n,) ``b * closest_liked - c * (closest_disliked + accumulated_dislikes) + separate *
    separation`` (weights: ``m.params``): the one place the terms are combined."""
    p = m.params
    like, dislike = closest_liked(m, c), closest_disliked(m, c) + accumulated_dislikes(m, c)
    return p.like_weight * like - p.dislike_weight * dislike + p.separate * separation(m, c)


def _closest(examples: np.ndarray, examples_content: np.ndarray | None, share: float, c: Candidates) -> np.ndarray:
    """(n,) ``(1 - share) * max_e cos(v, e) + share * max_e cos(v', e')``: the cosine to the
    closest example in the snapshot's space, mixed with the closest in the pooled space (v',
    e': the same accounts there) where both are known; the snapshot's alone elsewhere."""
    near = (c.vecs @ np.asarray(examples, np.float64).T).max(axis=1)
    if c.content is None or examples_content is None or not len(examples_content):
        return near
    other = (np.asarray(c.content, np.float64) @ np.asarray(examples_content, np.float64).T).max(axis=1)
    both = np.ones(len(c.vecs), bool) if c.has_content is None else np.asarray(c.has_content, bool)
    return np.where(both, (1 - share) * near + share * other, near)


def ridge_separation(v: np.ndarray, liked: np.ndarray, disliked: np.ndarray, ridge: float) -> np.ndarray:
    """(n,) ``v . w``, w the regularised least-squares direction that tells the (m, d) liked (+1)
    from the (k, d) disliked (-1), targets centred: ``w = X^T (X X^T + ridge I)^-1 y`` over the
    m + k marked X (kernel ridge, linear kernel: m + k unknowns whatever d). What several liked
    share counts more than what one has alone (Rocchio's difference of means, corrected for
    how the marked vectors correlate)."""
    x = np.concatenate([np.asarray(liked, np.float64), np.asarray(disliked, np.float64)])
    y = np.concatenate([np.ones(len(liked)), -np.ones(len(disliked))])
    y -= y.mean()
    a = np.linalg.solve(x @ x.T + ridge * np.eye(len(x)), y)
    return np.asarray(v, np.float64) @ (x.T @ a)
