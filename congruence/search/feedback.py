"""Relevance feedback: "more like these, fewer like those", as a Rocchio move of the query.

The user marks influencers of a list as liked or disliked; the next search

1. moves the query in the space the index holds (the head's influencer tower when a head
   is in service, the pooled space otherwise): ``q' = normalize(q + b * mean(liked) -
   c * mean(disliked))`` (Rocchio, SMART weights alpha = 1). FAISS ranks by ``q' . x``, that
   is the query's own similarity plus b times the mean similarity to the liked influencers
   minus c times that to the disliked ones. A brand's query is a brand-tower vector, the
   liked ones influencer-tower vectors: both are compared with the same influencer-tower
   vectors by inner product, so the sum is a sum of the scores each would give alone;
2. with a head in service, moves the rerank the same way (``rerank.PostQuery``): the head's
   score of a candidate becomes ``mix0 * cos(q', c) + bias + mix1 * (a * set(brand posts, c)
   + b * set(liked posts, c) - c * set(disliked posts, c)) / (a + b - c)``, the head's own
   set-to-set term over the brand's posts, the liked influencers' posts and the disliked
   ones': liked influencers' posts join the brand's post set (with weight b), disliked
   ones' posts count against (weight c), and the pooled term uses the moved query;
3. never returns a liked or a disliked influencer again (they are excluded, per query).

Everything here is arrays in, arrays out; the engine resolves ids and reads vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.core.vectors import l2_normalize
from congruence.indexer.store import Store
from congruence.search.rerank import PostQuery

MAX_FEEDBACK = 500  # ids in one like or dislike list
LIKE_WEIGHT, DISLIKE_WEIGHT = 0.75, 0.25  # Rocchio's beta and gamma (alpha = 1)
# (space, seqs) -> (seqs found, (n, d) float32 vectors), as ``retrieve.ExactVectors``
ExactVectors = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Feedback:
    """Influencer ids the user liked and disliked, and the Rocchio weights b (like) and c
    (dislike) against the query's 1. Build with ``make`` to check them."""

    like: tuple[str, ...] = ()
    dislike: tuple[str, ...] = ()
    like_weight: float = LIKE_WEIGHT
    dislike_weight: float = DISLIKE_WEIGHT

    @classmethod
    def make(cls, like: Sequence[str] | None = None, dislike: Sequence[str] | None = None,
             like_weight: float | None = None, dislike_weight: float | None = None) -> Feedback:
        likes, dislikes = _ids(like, "like"), _ids(dislike, "dislike")
        both = sorted(set(likes) & set(dislikes))
        if both:
            raise InvalidInput(f"{both[0]!r} is both liked and disliked")
        b = _weight(LIKE_WEIGHT if like_weight is None else like_weight, "like_weight")
        c = _weight(DISLIKE_WEIGHT if dislike_weight is None else dislike_weight, "dislike_weight")
        if c >= 1 + b:
            raise InvalidInput(f"dislike_weight ({c}) must be below 1 + like_weight ({1 + b}): "
                               "the query would point away from the brand")
        return cls(likes, dislikes, b, c)

    @property
    def active(self) -> bool:
        return bool(self.like or self.dislike)

    @property
    def ids(self) -> tuple[str, ...]:
        return self.like + self.dislike


def _ids(values: Sequence[str] | None, name: str) -> tuple[str, ...]:
    """The ids, stripped, blanks and repeats dropped."""
    if values is None:
        return ()
    if isinstance(values, str) or any(not isinstance(v, str) for v in values):
        raise InvalidInput(f"{name}: expected a list of influencer ids")
    out = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if len(out) > MAX_FEEDBACK:
        raise InvalidInput(f"{name}: at most {MAX_FEEDBACK} influencer ids, got {len(out)}")
    return out


def _weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= 10:
        raise InvalidInput(f"{name} must be a number from 0 to 10, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Marked:
    """Feedback resolved in a snapshot's space. seqs: every marked influencer's seq (the
    exclusions); liked, disliked: (n, d) L2-normalised vectors of those with one; liked_posts,
    disliked_posts: their per-post vectors stacked, (P, d) (None in the pooled space)."""

    seqs: np.ndarray
    liked: np.ndarray
    disliked: np.ndarray
    like_weight: float
    dislike_weight: float
    liked_posts: np.ndarray | None = None
    disliked_posts: np.ndarray | None = None


def rocchio(xq: np.ndarray, liked: np.ndarray, disliked: np.ndarray, like_weight: float,
            dislike_weight: float) -> np.ndarray:
    """(d,) L2-normalised ``xq + b * mean(liked) - c * mean(disliked)``; an empty side adds
    nothing. xq: (d,) L2-normalised; liked, disliked: (n, d) L2-normalised."""
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


def apply(xq: np.ndarray, brand_posts: np.ndarray | None, marked: Marked | None,
          exclude: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray | PostQuery | None, np.ndarray]:
    """(moved query (d,), what the rerank compares with, seqs to exclude) for one query.

    brand_posts: the query's (P, d) per-post vectors, or None (not reranked); exclude: seqs
    excluded anyway (``similar``'s seeds). Without feedback the inputs come back unchanged.
    """
    skip = np.asarray(list(exclude), np.int64)
    if marked is None:
        return xq, brand_posts, skip
    q = rocchio(xq, marked.liked, marked.disliked, marked.like_weight, marked.dislike_weight)
    skip = np.unique(np.concatenate([skip, marked.seqs.astype(np.int64)]))
    if brand_posts is None:
        return q, None, skip
    sets, weights = [np.asarray(brand_posts, np.float32)], [1.0]
    for posts, w in ((marked.liked_posts, marked.like_weight), (marked.disliked_posts, -marked.dislike_weight)):
        if posts is not None and len(posts) and w != 0:
            sets.append(np.asarray(posts, np.float32))
            weights.append(w)
    total = sum(weights)
    return q, PostQuery(tuple(sets), tuple(w / total for w in weights), q), skip


Lookup = Callable[[list[str]], tuple[dict[str, str], list[int]]]  # ids -> ({id: kind}, seqs aligned)
PerPost = Callable[[list[str], list[int]], dict[str, np.ndarray]]  # ids, seqs -> {id: (P, d)}


def resolve(space: str, dim: int, feedback: Feedback, lookup: Lookup, exact: ExactVectors,
            per_post: PerPost | None) -> Marked | None:
    """``feedback`` in ``space``: ids checked (unknown ids and brands are refused), vectors
    read with ``exact``, per-post vectors with ``per_post`` (None: the query is not
    reranked). An influencer without a vector is still excluded; it moves nothing."""
    if not feedback.active:
        return None
    ids = list(feedback.ids)
    kinds, seqs = lookup(ids)
    for a in ids:
        Store.check_kind(a, kinds.get(a), "influencer")
    seq_of = dict(zip(ids, seqs, strict=True))
    found, vecs = exact(space, np.asarray(seqs, np.int64))
    row = {int(s): i for i, s in enumerate(found)}

    def side(group: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
        have = [a for a in group if seq_of[a] in row]
        xs = vecs[[row[seq_of[a]] for a in have]] if have else np.zeros((0, dim), np.float32)
        if per_post is None or not have:
            return xs, None
        got = per_post(have, [seq_of[a] for a in have])
        sets = [got[a] for a in have if a in got and len(got[a])]
        return xs, np.concatenate(sets) if sets else None

    liked, liked_posts = side(feedback.like)
    disliked, disliked_posts = side(feedback.dislike)
    return Marked(np.asarray(seqs, np.int64), liked, disliked, feedback.like_weight, feedback.dislike_weight,
                  liked_posts, disliked_posts)
