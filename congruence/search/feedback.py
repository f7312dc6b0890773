"""Relevance feedback: "more like these, fewer like those".

The user marks influencers of a list as liked or disliked; the next search, in the space the
index holds (the head's influencer tower when a head is in service, the pooled space
otherwise):

1. gathers candidates around the query moved Rocchio-style, ``q' = normalize(q + b *
   mean(liked) - c * mean(disliked))`` (SMART alpha = 1), around the query itself, and
   around each liked influencer (its nearest; ``NEIGHBOURS`` each): partners of a kind the
   brand's own vector ranks low but a liked one sits among are found;
2. scores each candidate by what the query alone gives it (the head's rerank against the
   brand's posts, or the cosine to the query) plus the nearest-example terms
   ``s * (b * max_l cos(c, l) - c * (max_d cos(c, d) + dislikes(c)))`` over the liked l and
   disliked d (s: the head's weight of one pooled cosine, ``head.mix[0]``, when the head
   reranks the query, else 1). A candidate close to *any* liked influencer moves up, one close
   to any disliked one moves down: the liked often span several kinds of creator (a brand's
   partners in two niches), and their mean points between them; the disliked each mark a
   region not to show again. With a head in service, "close" is asked of two spaces: the
   head's influencer tower and the encoders' own pooled space (``CONTENT_SPACE``), mixed
   ``LIKE_CONTENT`` and ``DISLIKE_CONTENT`` (``mixed``). The tower is trained to put a brand's
   partners near the brand, so it puts creators of the niches a brand's kind partners with
   near one another (pets beside home interiors for a food brand); "not this creator" is a
   question about what the posts show, which the pooled space keeps apart. Once something is
   liked, ``dislikes(c) = ACCUMULATE * sum_d exp((cos(c, d) - 1) / WIDTH)`` (in the
   snapshot's space) adds up too: a niche the user has disliked again and again
   goes away, even when it sits next to what the user likes (jeans beside the liked
   holsters); before any like it is left out, so at the default weights dislikes alone do not
   push a brand's own niche away (``accumulated``). Once both sides have someone, ``s *
   SEPARATE * separation(c)`` joins them: where c lies along the direction that tells the
   liked from the disliked in the pooled space, by regularised least squares. The closest
   examples ask "near which marked one?"; this asks what the liked share that the disliked
   lack (food creators of the classes a brand partners with, against food creators of the
   classes it does not). ``similar``'s seeds count as liked;
3. never returns a liked or a disliked influencer again (they are excluded, per query).

Measured on the held-out photo benchmark (``bench/feedback.py``, brands with first-list
recall@10 < 0.5, partners found in 40 shown against reading 40, head in service): liked posts
joined to the brand's post set in the rerank (the first design) found 1.10x; the closest
liked and disliked alone 1.21x (1.25x with c = 2); with the accumulated dislikes 1.29x, of
at most 1.34x (the first 10 are the list without feedback). Across seven heads trained with
different seeds (``bench/feedback_seeds.py``) the head-only terms found 1.300x pooled; with the
pooled space mixed in, 1.339x (1.330x when each head's mix is chosen on the other six); with the
separation added, 1.344x (1.304x on the bench's head; weight and ridge chosen on the other six
heads give 1.345x on the one left out).

Everything here is arrays in, arrays out; the engine resolves ids and reads vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from congruence.core.errors import InvalidInput, NotFound
from congruence.core.vectors import l2_normalize
from congruence.store.records import Store

MAX_FEEDBACK = 500  # ids in one like or dislike list
MAX_ID = 200  # characters in an account id, as the API's brand_id
# b and c, against the query's own score. A heavier c pushes whole niches away on one dislike
# (a fitness brand, one fitness creator disliked at c = 2: no fitness creator left in the
# demo's first 8), so c = 1, and repeated dislikes add up instead (``accumulated``)
LIKE_WEIGHT, DISLIKE_WEIGHT = 4.0, 1.0
# the accumulated dislikes' weight against the closest disliked's, and their width in cosine:
# the best of a grid (weight 0-1.5, width 0.05-0.2) for the photo benchmark's simulated user on the _00
# half of its held-out brands, and the best on the _01 half too (``bench/feedback.py``)
ACCUMULATE, WIDTH = 0.5, 0.1
# the share of the closest-liked and closest-disliked cosines taken in the pooled space when a
# head is in service (the head's influencer tower gives the rest): chosen over seven heads of
# the photo benchmark, 0.25-0.75 and 0.625-0.875 all within 0.005x of the best; leaving each
# head out in turn and choosing on the other six gives 1.330x on the one left out
# (``bench/feedback_seeds.py``). Without a head both spaces are the pooled one
CONTENT_SPACE = "pooled"
LIKE_CONTENT, DISLIKE_CONTENT = 0.5, 0.75
# the weight of ``separation`` (added to the terms, like them times s) and its ridge: chosen
# over seven heads of the photo benchmark (weight 0.25-0.75 by ridge 0.03-1: 1.338x-1.346x
# pooled; 0.25 and 0.3 within 0.003x of the best, and it keeps the run without a head, where
# ridge 0.03 loses 6 partners; README). Without a head, in the pooled space too
SEPARATE, RIDGE = 0.25, 0.3
NEIGHBOURS, MAX_AROUND = 20, 64  # candidates gathered around each liked influencer; liked searched around
# (space, seqs) -> (seqs found, (n, d) float32 vectors), as ``retrieve.ExactVectors``
ExactVectors = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Feedback:
    """Influencer ids the user liked and disliked, and the weights b (like) and c (dislike)
    against the query's own score. Build with ``make`` to check them."""

    like: tuple[str, ...] = ()
    dislike: tuple[str, ...] = ()
    like_weight: float = LIKE_WEIGHT
    dislike_weight: float = DISLIKE_WEIGHT

    @classmethod
    def make(
        cls,
        like: Sequence[str] | None = None,
        dislike: Sequence[str] | None = None,
        like_weight: float | None = None,
        dislike_weight: float | None = None,
    ) -> Feedback:
        likes, dislikes = _ids(like, "like"), _ids(dislike, "dislike")
        both = sorted(set(likes) & set(dislikes))
        if both:
            raise InvalidInput(f"{both[0]!r} is both liked and disliked")
        b = _weight(LIKE_WEIGHT if like_weight is None else like_weight, "like_weight")
        c = _weight(DISLIKE_WEIGHT if dislike_weight is None else dislike_weight, "dislike_weight")
        if c >= 1 + b:
            raise InvalidInput(
                f"dislike_weight ({c}) must be below 1 + like_weight ({1 + b}): "
                "the query would point away from the brand"
            )
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
    long = next((a for a in out if len(a) > MAX_ID), None)
    if long is not None:
        raise InvalidInput(f"{name}: {long[:40]!r}... is longer than {MAX_ID} characters, not an influencer id")
    if len(out) > MAX_FEEDBACK:
        raise InvalidInput(f"{name}: at most {MAX_FEEDBACK} influencer ids, got {len(out)}")
    return out


def _weight(value: float, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 10
    ):
        raise InvalidInput(f"{name} must be a number from 0 to 10, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Marked:
    """Feedback resolved in a snapshot's space. seqs: every marked influencer's seq (the
    exclusions); liked, disliked: (n, d) L2-normalised vectors of those with one;
    liked_content, disliked_content: their (n, dc) vectors in ``CONTENT_SPACE``, row for row,
    when the snapshot's space is another one and every one of them has such a vector (else
    None: the terms stay in the snapshot's space)."""

    seqs: np.ndarray
    liked: np.ndarray
    disliked: np.ndarray
    like_weight: float
    dislike_weight: float
    liked_content: np.ndarray | None = None
    disliked_content: np.ndarray | None = None
    pooled: bool = False  # the snapshot's space is ``CONTENT_SPACE`` (no head in service)


@dataclass(frozen=True)
class Moves:
    """What ``retrieve`` does with one query's feedback. moved: (d,) the Rocchio query it
    searches beside the query; around: (n, d) the liked influencers it searches around;
    liked, disliked: (n, d) L2-normalised vectors of the nearest-example terms, weighted
    like_weight and dislike_weight; liked_content, disliked_content: the same influencers in
    ``CONTENT_SPACE`` (``Marked``), or None."""

    moved: np.ndarray
    around: np.ndarray
    liked: np.ndarray
    disliked: np.ndarray
    like_weight: float
    dislike_weight: float
    liked_content: np.ndarray | None = None
    disliked_content: np.ndarray | None = None
    pooled: bool = False  # the snapshot's space is ``CONTENT_SPACE``: ``separation`` uses vecs

    @property
    def wants_content(self) -> bool:
        """Whether ``terms`` would use the candidates' ``CONTENT_SPACE`` vectors."""
        return self.liked_content is not None or self.disliked_content is not None

    def terms(
        self, vecs: np.ndarray, content: np.ndarray | None = None, has_content: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) ``b * like(v) - c * (dislike(v) + dislikes(v))`` of (n, d) L2-normalised vectors:
        ``like``, ``dislike``: the cosine to the closest liked and closest disliked, ``mixed``
        with the pooled space's when ``content`` (the (n, dc) vectors there) is given (rows
        where ``has_content`` is False keep the snapshot's space alone); ``dislikes``: the
        accumulated term, in the snapshot's space (see ``accumulated``)."""
        v = np.asarray(vecs, np.float64)
        out = np.zeros(len(v), np.float64)
        if len(self.liked) and self.like_weight:
            out += self.like_weight * mixed(v, self.liked, content, self.liked_content, has_content, LIKE_CONTENT)
        if len(self.disliked) and self.dislike_weight:
            sims = v @ np.asarray(self.disliked, np.float64).T
            push = mixed(v, self.disliked, content, self.disliked_content, has_content, DISLIKE_CONTENT, sims)
            if len(self.liked):
                push += accumulated(sims)
            out -= self.dislike_weight * push
        if len(self.liked) and len(self.disliked) and self.like_weight and self.dislike_weight:
            if self.pooled:
                out += SEPARATE * separation(v, self.liked, self.disliked)
            elif content is not None and self.liked_content is not None and self.disliked_content is not None:
                sep = separation(np.asarray(content, np.float64), self.liked_content, self.disliked_content)
                out += SEPARATE * (sep if has_content is None else np.where(has_content, sep, 0.0))
        return out


def separation(v: np.ndarray, liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
    """(n,) ``v . w`` of (n, d) vectors, w the regularised least-squares direction that tells
    the (m, d) liked (+1) from the (k, d) disliked (-1), targets centred: ``w = X^T (X X^T +
    RIDGE * I)^-1 y`` over the m + k marked X (kernel ridge with a linear kernel, m + k unknowns
    whatever d). The closest-example terms ask "near which one?"; this asks "along what do
    the liked differ from the disliked?": what several liked share counts more than what one
    has alone, and a region between two dislikes is told apart from one between two likes
    (the direction is Rocchio's difference of means, corrected for how the marked vectors
    correlate). Zero unless both sides have someone."""
    x = np.concatenate([np.asarray(liked, np.float64), np.asarray(disliked, np.float64)])
    y = np.concatenate([np.ones(len(liked)), -np.ones(len(disliked))])
    y -= y.mean()
    a = np.linalg.solve(x @ x.T + RIDGE * np.eye(len(x)), y)
    return np.asarray(v, np.float64) @ (x.T @ a)


def mixed(
    v: np.ndarray,
    examples: np.ndarray,
    content: np.ndarray | None,
    examples_content: np.ndarray | None,
    has_content: np.ndarray | None,
    share: float,
    sims: np.ndarray | None = None,
) -> np.ndarray:
    """(n,) ``(1 - share) * max_e cos(v, e) + share * max_e cos(v', e')``: the cosine to the
    closest example in the snapshot's space, mixed with the closest in the pooled space (v',
    e': the same accounts there) where both are known; the snapshot's alone elsewhere.
    sims: ``v @ examples.T`` when already computed."""
    near = (v @ np.asarray(examples, np.float64).T if sims is None else sims).max(axis=1)
    if content is None or examples_content is None or not len(examples_content):
        return near
    other = (np.asarray(content, np.float64) @ np.asarray(examples_content, np.float64).T).max(axis=1)
    both = np.ones(len(v), bool) if has_content is None else np.asarray(has_content, bool)
    return np.where(both, (1 - share) * near + share * other, near)


def accumulated(sims: np.ndarray) -> np.ndarray:
    """(n,) ``ACCUMULATE * sum_d exp((cos(v, d) - 1) / WIDTH)`` of (n, m) cosines to the disliked:
    each disliked influencer adds a push that is strong only close to it, so a niche disliked
    again and again goes away. ``Moves.terms`` adds it only once something is liked: a liked
    influencer with a vector, whatever the like weight, or a ``similar`` seed (so ``similar``
    with dislikes always has it). Dislikes alone cannot tell "not these creators" from "not
    this kind", and a brand's own niche must survive a few dislikes (the demo's fitness brand,
    two fitness creators disliked: the other fitness creators stay on top); with a like, the
    repeated dislikes draw the line between what the user wants and the creators next to it
    (jeans beside liked holsters)."""
    return ACCUMULATE * np.exp((sims - 1.0) / WIDTH).sum(axis=1)


def rocchio(
    xq: np.ndarray, liked: np.ndarray, disliked: np.ndarray, like_weight: float, dislike_weight: float
) -> np.ndarray:
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


def apply(
    xq: np.ndarray,
    marked: Marked | None,
    exclude: Sequence[int] = (),
    examples: np.ndarray | None = None,
    examples_content: np.ndarray | None = None,
) -> tuple[np.ndarray, Moves | None]:
    """(seqs to exclude, what ``retrieve`` does with the feedback or None) for one query.

    xq: (d,) L2-normalised query; exclude: seqs excluded anyway (``similar``'s seeds);
    examples: (n, d) vectors that count as liked in the nearest-example terms once there is
    feedback (``similar``'s seeds: a look-alike of a seed is what the user asked for, and one
    dislike should not outweigh that); examples_content: the same in ``CONTENT_SPACE``, row
    for row, or None (then the like term stays in the snapshot's space).
    """
    skip = np.asarray(list(exclude), np.int64)
    if marked is None:
        return skip, None
    moved = rocchio(xq, marked.liked, marked.disliked, marked.like_weight, marked.dislike_weight)
    skip = np.unique(np.concatenate([skip, marked.seqs.astype(np.int64)]))
    liked, liked_content = marked.liked, marked.liked_content
    if examples is not None:
        liked = np.concatenate([np.asarray(examples, np.float32), marked.liked])
        if examples_content is None or (len(marked.liked) and liked_content is None):
            liked_content = None  # a liked account without a pooled vector: the like term stays in one space
        else:  # nothing liked yet (resolve's None for an empty side), or both known
            own = [] if not len(marked.liked) or liked_content is None else [liked_content]
            liked_content = np.concatenate([np.asarray(examples_content, np.float32), *own])
    return skip, Moves(
        moved,
        marked.liked[:MAX_AROUND],
        liked,
        marked.disliked,
        marked.like_weight,
        marked.dislike_weight,
        liked_content,
        marked.disliked_content,
        marked.pooled,
    )


Lookup = Callable[[list[str]], tuple[dict[str, str], list[int]]]  # ids -> ({id: kind}, seqs aligned)


def resolve(space: str, dim: int, feedback: Feedback, lookup: Lookup, exact: ExactVectors) -> Marked | None:
    """``feedback`` in ``space``: ids checked (unknown ids and brands are refused), vectors
    read with ``exact`` (and, when ``space`` is not ``CONTENT_SPACE``, their vectors there).
    An influencer without a vector is still excluded; it moves nothing."""
    if not feedback.active:
        return None
    ids = list(feedback.ids)
    kinds, seqs = lookup(ids)
    for a in ids:
        try:
            Store.check_kind(a, kinds.get(a), "influencer")
        except NotFound as e:  # which list it came from: a typo among 30 likes
            raise NotFound(f"{'like' if a in feedback.like else 'dislike'}: {e}") from None
    seq_of = dict(zip(ids, seqs, strict=True))
    found, vecs = exact(space, np.asarray(seqs, np.int64))
    row = {int(s): i for i, s in enumerate(found)}

    def side(group: tuple[str, ...]) -> np.ndarray:
        have = [row[seq_of[a]] for a in group if seq_of[a] in row]
        return vecs[have] if have else np.zeros((0, dim), np.float32)

    marked = Marked(
        np.asarray(seqs, np.int64),
        side(feedback.like),
        side(feedback.dislike),
        feedback.like_weight,
        feedback.dislike_weight,
    )
    if space == CONTENT_SPACE:
        return replace(marked, pooled=True)
    cfound, cvecs = exact(CONTENT_SPACE, np.asarray(seqs, np.int64))

    def content(group: tuple[str, ...]) -> np.ndarray | None:  # the same accounts as ``side``'s
        return _aligned(cfound, cvecs, [seq_of[a] for a in group if seq_of[a] in row])

    return replace(marked, liked_content=content(feedback.like), disliked_content=content(feedback.dislike))


def content_vectors(exact: ExactVectors, seqs: Sequence[int]) -> np.ndarray | None:
    """(n, dc) ``CONTENT_SPACE`` vectors of ``seqs``, row for row, or None (``_aligned``)."""
    return _aligned(*exact(CONTENT_SPACE, np.asarray(list(seqs), np.int64)), seqs)


def _aligned(found: np.ndarray, vecs: np.ndarray, seqs: Sequence[int]) -> np.ndarray | None:
    """The rows of ``vecs`` (those of accounts ``found``) of ``seqs``, row for row; None when
    no seq is asked for or one has no vector."""
    row = {int(s): i for i, s in enumerate(found)}
    if not len(seqs) or any(int(s) not in row for s in seqs):
        return None
    return vecs[[row[int(s)] for s in seqs]]
