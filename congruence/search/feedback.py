"""Relevance feedback: "more like these, fewer like those".

The user marks influencers of a list as liked or disliked; the next search, in the space the
index holds (the head's influencer tower when a head is in service, the pooled space
otherwise), gathers candidates around the query, around the query moved Rocchio-style
(``feedback_terms.rocchio``) and around each liked influencer; scores each by what the query
alone gives it plus ``s * Marked.terms`` (s: the head's weight of one pooled cosine,
``head.mix[0]``, when the head reranks the query, else 1): four named terms combined in one
place (``feedback_terms.weighted_terms``), weighted by ``FeedbackParams``; and never returns a
marked influencer again. With a head in service the closest-example cosines are asked of the
encoders' pooled space (``CONTENT_SPACE``) too: the tower puts the niches a brand's kind
partners with near one another, while "not this creator" is a question about what the posts
show. ``similar``'s seeds count as liked.

How each constant was chosen, and what it measured: docs/feedback.md, "How the weights were
chosen". Everything here is arrays in, arrays out; the engine resolves ids and reads vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from congruence.core.errors import InvalidInput, NotFound
from congruence.search.feedback_terms import Candidates, rocchio, weighted_terms

MAX_FEEDBACK = 500  # ids in one like or dislike list (an input limit, not a weight)
MAX_ID = 200  # characters in an account id, as the API's brand_id
CONTENT_SPACE = "pooled"  # the second space the closest-example terms are asked of, with a head
# (space, seqs) -> (seqs found, (n, d) float32 vectors), as ``retrieve.ExactVectors``
ExactVectors = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FeedbackParams:
    """Every constant of relevance feedback (how each was chosen: docs/feedback.md)."""

    like_weight: float = 4.0
    """b: weight of ``closest_liked``, against the query's own score (a user may set it)."""
    dislike_weight: float = 1.0
    """c: weight of ``closest_disliked`` and ``accumulated_dislikes`` (a user may set it)."""
    accumulate: float = 0.5
    """weight of each disliked influencer's push in ``accumulated_dislikes``."""
    width: float = 0.1
    """how far, in cosine, each disliked influencer's push in ``accumulated_dislikes`` reaches."""
    like_content: float = 0.5
    """share of ``closest_liked`` taken in the pooled space when a head is in service."""
    dislike_content: float = 0.75
    """share of ``closest_disliked`` taken in the pooled space when a head is in service."""
    separate: float = 0.25
    """weight of ``separation``."""
    ridge: float = 0.3
    """ridge of the least squares that ``separation`` solves."""
    neighbours: int = 20
    """candidates gathered around each liked influencer."""
    max_around: int = 64
    """liked influencers searched around, at most."""

    def __post_init__(self) -> None:
        for name in ("like_weight", "dislike_weight", "accumulate", "separate"):
            if not getattr(self, name) >= 0:  # NaN too
                raise InvalidInput(f"must be a number of at least 0, got {getattr(self, name)!r}", field=name)
        for name in ("like_content", "dislike_content"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidInput(f"must be a share from 0 to 1, got {getattr(self, name)!r}", field=name)
        for name in ("width", "ridge"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"must be positive, got {getattr(self, name)!r}", field=name)
        for name in ("neighbours", "max_around"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"must be at least 1, got {getattr(self, name)!r}", field=name)

    def describe(self, head: bool) -> str:
        """The feedback terms in words, as the API's ranking text appends them to how the list
        was scored without feedback (``head``: a head is in service)."""
        push = " + once something is liked, a push that grows with every disliked one nearby" if self.accumulate else ""
        apart = (
            f", plus, once both are marked, {self.separate:g} x the position along what tells the liked "
            "from the disliked, by least squares over pooled embeddings"
            if self.separate
            else ""
        )
        similarity = "the cosine of pooled embeddings"
        if head:
            similarity = (
                "the cosine in the head's influencer tower mixed with the cosine of pooled embeddings "
                f"({_ratio(self.like_content)} to the liked, {_ratio(self.dislike_content)} to the disliked)"
            )
        return (
            ", plus the feedback terms (like weight x similarity to the closest liked influencer, minus "
            f"dislike weight x (similarity to the closest disliked one{push}){apart}); similarity: {similarity}"
        )


def _ratio(share: float) -> str:
    """The "tower:pooled" ratio of a pooled share: 0.75 -> "1:3"."""
    tower, pooled = Fraction(1 - share).limit_denominator(1000), Fraction(share).limit_denominator(1000)
    if not pooled:
        return "1:0"
    r = tower / pooled
    return f"{r.numerator}:{r.denominator}"


PARAMS = FeedbackParams()


@dataclass(frozen=True)
class Feedback:
    """Influencer ids the user liked and disliked, and the parameters (the request's like and
    dislike weights in them). Build with ``make`` to check them."""

    like: tuple[str, ...] = ()
    dislike: tuple[str, ...] = ()
    params: FeedbackParams = PARAMS

    @classmethod
    def make(
        cls,
        like: Sequence[str] | None = None,
        dislike: Sequence[str] | None = None,
        like_weight: float | None = None,
        dislike_weight: float | None = None,
        params: FeedbackParams = PARAMS,
    ) -> Feedback:
        likes, dislikes = _ids(like, "like"), _ids(dislike, "dislike")
        both = sorted(set(likes) & set(dislikes))
        if both:
            raise InvalidInput(f"{both[0]!r} is both liked and disliked")
        b = _weight(params.like_weight if like_weight is None else like_weight, "like_weight")
        c = _weight(params.dislike_weight if dislike_weight is None else dislike_weight, "dislike_weight")
        if c >= 1 + b:
            raise InvalidInput(
                f"({c}) must be below 1 + the like weight ({1 + b}): the query would point away from the brand",
                field="dislike_weight",
            )
        return cls(likes, dislikes, replace(params, like_weight=b, dislike_weight=c))

    @property
    def active(self) -> bool:
        return bool(self.like or self.dislike)

    @property
    def ids(self) -> tuple[str, ...]:
        return self.like + self.dislike

    @property
    def like_weight(self) -> float:
        return self.params.like_weight

    @property
    def dislike_weight(self) -> float:
        return self.params.dislike_weight


def _ids(values: Sequence[str] | None, name: str) -> tuple[str, ...]:
    """The ids, stripped, blanks and repeats dropped."""
    if values is None:
        return ()
    if isinstance(values, str) or any(not isinstance(v, str) for v in values):
        raise InvalidInput("expects a list of influencer ids", field=name)
    out = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    long = next((a for a in out if len(a) > MAX_ID), None)
    if long is not None:
        raise InvalidInput(f"holds {long[:40]!r}..., longer than {MAX_ID} characters: not an influencer id", field=name)
    if len(out) > MAX_FEEDBACK:
        raise InvalidInput(f"takes at most {MAX_FEEDBACK} influencer ids, got {len(out)}", field=name)
    return out


def _weight(value: float, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 10
    ):
        raise InvalidInput(f"must be a number from 0 to 10, got {value!r}", field=name)
    return float(value)


@dataclass(frozen=True)
class Marked:
    """Feedback in a snapshot's space: as ``resolve`` reads it, then (``apply``) one query's,
    which ``retrieve`` gathers candidates with (``moved``, ``around``) and scores them by
    (``terms``). liked, disliked: (n, d) L2-normalised vectors of those with one;
    liked_content, disliked_content: the same influencers' (n, dc) vectors in
    ``CONTENT_SPACE``, row for row, when the snapshot's space is another one and every one of
    them has such a vector (else None: the terms stay in the snapshot's space)."""

    seqs: np.ndarray  # every marked influencer's seq (the exclusions)
    liked: np.ndarray
    disliked: np.ndarray
    params: FeedbackParams = PARAMS
    liked_content: np.ndarray | None = None
    disliked_content: np.ndarray | None = None
    pooled: bool = False  # the snapshot's space is ``CONTENT_SPACE`` (no head): ``separation`` uses it
    examples: int = 0  # the first rows of liked (and liked_content) are examples (``similar``'s seeds)
    moved: np.ndarray | None = None  # (d,) the Rocchio query searched beside the query (``apply``)

    @property
    def around(self) -> np.ndarray:
        """(n, d) the liked influencers searched around (not the examples)."""
        return self.liked[self.examples :][: self.params.max_around]

    @property
    def wants_content(self) -> bool:
        """Whether ``terms`` would use the candidates' ``CONTENT_SPACE`` vectors."""
        return self.liked_content is not None or self.disliked_content is not None

    def terms(
        self, vecs: np.ndarray, content: np.ndarray | None = None, has_content: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) the feedback terms (``weighted_terms``) of (n, d) L2-normalised candidates; content: their
        (n, dc) vectors in ``CONTENT_SPACE`` (rows where ``has_content`` is False have none)."""
        return weighted_terms(self, Candidates(np.asarray(vecs, np.float64), content, has_content))

    def with_examples(self, examples: np.ndarray, examples_content: np.ndarray | None) -> Marked:
        """The examples joined to the liked, in the closest-example terms only, in
        ``CONTENT_SPACE`` too when theirs and every liked one's vectors there are known."""
        liked_content = self.liked_content
        if examples_content is None or (len(self.liked) and liked_content is None):
            liked_content = None  # a liked account without a pooled vector: the like term stays in one space
        else:  # nothing liked yet (resolve's None for an empty side), or both known
            own = [liked_content] if len(self.liked) and liked_content is not None else []
            liked_content = np.concatenate([np.asarray(examples_content, np.float32), *own])
        liked = np.concatenate([np.asarray(examples, np.float32), self.liked])
        return replace(self, liked=liked, liked_content=liked_content, examples=self.examples + len(examples))


def apply(
    xq: np.ndarray,
    marked: Marked | None,
    exclude: Sequence[int] = (),
    examples: np.ndarray | None = None,
    examples_content: np.ndarray | None = None,
) -> tuple[np.ndarray, Marked | None]:
    """(seqs to exclude, the feedback as ``retrieve`` uses it, or None) for one query.

    xq: (d,) L2-normalised query; exclude: seqs excluded anyway (``similar``'s seeds);
    examples: (n, d) vectors that count as liked in the closest-example terms once there is
    feedback (``similar``'s seeds: a look-alike of a seed is what the user asked for, and one
    dislike should not outweigh that); examples_content: the same in ``CONTENT_SPACE``, row
    for row, or None (then the like term stays in the snapshot's space).
    """
    skip = np.asarray(list(exclude), np.int64)
    if marked is None:
        return skip, None
    p = marked.params
    moved = rocchio(xq, marked.liked, marked.disliked, p.like_weight, p.dislike_weight)
    skip = np.unique(np.concatenate([skip, marked.seqs.astype(np.int64)]))
    out = replace(marked, moved=moved)
    return skip, out if examples is None else out.with_examples(examples, examples_content)


Lookup = Callable[[list[str]], tuple[dict[str, str], list[int]]]  # ids -> ({id: kind}, seqs aligned)


def resolve(space: str, dim: int, feedback: Feedback, lookup: Lookup, exact: ExactVectors) -> Marked | None:
    """``feedback`` in ``space``: ids checked (unknown ids and brands are refused), vectors
    read with ``exact`` (and, when ``space`` is not ``CONTENT_SPACE``, their vectors there).
    An influencer without a vector is still excluded; it moves nothing."""
    if not feedback.active:
        return None
    ids = list(feedback.ids)
    kinds, seqs = lookup(ids)
    for name, group in (("like", feedback.like), ("dislike", feedback.dislike)):
        for a in group:
            if kinds.get(a) != "influencer":  # which list: a typo among 30 likes
                what = "an unknown influencer" if kinds.get(a) is None else f"a {kinds[a]}, not an influencer"
                raise NotFound(f"names {what}: {a!r}", field=name)
    seq_of = dict(zip(ids, seqs, strict=True))
    found, vecs = exact(space, np.asarray(seqs, np.int64))
    row = {int(s): i for i, s in enumerate(found)}

    def side(group: tuple[str, ...]) -> np.ndarray:
        have = [row[seq_of[a]] for a in group if seq_of[a] in row]
        return vecs[have] if have else np.zeros((0, dim), np.float32)

    marked = Marked(np.asarray(seqs, np.int64), side(feedback.like), side(feedback.dislike), feedback.params)
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
