"""Relevance feedback and look-alikes of several influencers, against brute force, with and
without a trained head."""

from __future__ import annotations

from dataclasses import astuple, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from congruence.core.errors import InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.core.vectors import l2_normalize
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.feedback import CONTENT_SPACE, PARAMS, Feedback, FeedbackParams, Marked, apply, resolve
from congruence.search.feedback_terms import ridge_separation, rocchio
from congruence.search.filters import Filters
from congruence.search.retrieve import retrieve
from congruence.store.vectors import VectorStore
from congruence.training.deploy import deploy

from .test_head_product import trained_head

BRAND = "brand_peakfit"  # a fitness brand: its first list is fitness creators
SEPARATE, RIDGE = PARAMS.separate, PARAMS.ridge


def moves(
    moved: np.ndarray,
    liked: np.ndarray,
    disliked: np.ndarray,
    b: float,
    c: float,
    liked_content: np.ndarray | None = None,
    disliked_content: np.ndarray | None = None,
    pooled: bool = False,
    **params: Any,
) -> Marked:
    """Feedback as ``retrieve`` takes it (``apply``'s): ``moved`` searched beside the query, the
    liked searched around, weights b and c (and any other ``FeedbackParams`` field given)."""
    p = replace(PARAMS, like_weight=b, dislike_weight=c, **params)
    return Marked(np.zeros(0, np.int64), liked, disliked, p, liked_content, disliked_content, pooled, moved=moved)


def influencer_vectors(engine: Engine, space: str | None = None) -> dict[str, np.ndarray]:
    with engine.reading() as store:
        _, ids, vecs = VectorStore(store).account_vectors(space or engine.snapshot.space, kind="influencer")
    return dict(zip(ids, vecs, strict=True))


def brute(q: np.ndarray, xb: dict[str, np.ndarray], skip: set[str], keep: set[str] | None = None) -> list[str]:
    ids = [a for a in xb if a not in skip and (keep is None or a in keep)]
    sims = np.stack([xb[a] for a in ids]) @ q
    return [ids[i] for i in np.argsort(-sims, kind="stable")]


def nearest_terms(
    xb: dict[str, np.ndarray],
    ids: list[str],
    liked: list[str],
    disliked: list[str],
    b: float,
    c: float,
    xc: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """b * max cos to a liked - c * (max cos to a disliked + 0.5 * sum exp((cos to a disliked - 1) / 0.1)
    when something is liked) + SEPARATE * the least-squares separation of the liked from the
    disliked when both are there, computed here, per id. xc: the pooled space's vectors (a head in
    service): the closest liked's cosine is then 0.5 xb's + 0.5 xc's, the closest disliked's
    0.25 xb's + 0.75 xc's."""
    x = np.stack([xb[a] for a in ids]).astype(np.float64)

    def near(group: list[str], share: float) -> np.ndarray:
        own = (x @ np.stack([xb[a] for a in group]).T.astype(np.float64)).max(1)
        if xc is None:
            return own
        y = np.stack([xc[a] for a in ids]).astype(np.float64)
        return (1 - share) * own + share * (y @ np.stack([xc[a] for a in group]).T.astype(np.float64)).max(1)

    out = np.zeros(len(ids))
    if liked:
        out += b * near(liked, 0.5)
    if disliked:
        sims = x @ np.stack([xb[a] for a in disliked]).T
        out -= c * (near(disliked, 0.75) + (0.5 * np.exp((sims - 1) / 0.1).sum(1) if liked else 0.0))
    if liked and disliked and b and c:  # the separation, in the pooled space (xb's own without a head)
        p = xb if xc is None else xc
        w = _ridge_direction(np.stack([p[a] for a in liked]), np.stack([p[a] for a in disliked]))
        out += SEPARATE * (np.stack([p[a] for a in ids]).astype(np.float64) @ w)
    return out


def brute_feedback(
    q: np.ndarray,
    xb: dict[str, np.ndarray],
    liked: list[str],
    disliked: list[str],
    b: float,
    c: float,
    skip: set[str] = frozenset(),
    keep: set[str] | None = None,
    xc: dict[str, np.ndarray] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(ids best first, scores): the cosine to q plus the nearest-example terms (``xc``: as
    ``nearest_terms``'), over every influencer but the marked and skipped (and only those kept)."""
    ids = [a for a in xb if a not in {*skip, *liked, *disliked} and (keep is None or a in keep)]
    scores = np.stack([xb[a] for a in ids]).astype(np.float64) @ q + nearest_terms(xb, ids, liked, disliked, b, c, xc)
    order = np.argsort(-scores, kind="stable")
    return [ids[i] for i in order], scores[order]


def test_rocchio_moves_toward_liked_and_away_from_disliked() -> None:
    rng = np.random.default_rng(0)
    q, liked, disliked = (l2_normalize(rng.normal(size=s).astype(np.float32)) for s in ((8,), (3, 8), (2, 8)))
    moved = rocchio(q, liked, disliked, 0.75, 0.25)
    expected = q + 0.75 * liked.mean(0) - 0.25 * disliked.mean(0)
    assert np.allclose(moved, expected / np.linalg.norm(expected), atol=1e-6)
    assert moved @ liked.mean(0) > q @ liked.mean(0) and moved @ disliked.mean(0) < q @ disliked.mean(0)
    skip, applied = apply(q, None, [4])
    assert applied is None and skip.tolist() == [4]


def test_nearest_example_terms_take_the_closest_liked_and_disliked() -> None:
    rng = np.random.default_rng(1)
    vecs, liked, disliked = (l2_normalize(rng.normal(size=s).astype(np.float32)) for s in ((6, 8), (3, 8), (2, 8)))
    m = moves(vecs[0], liked, disliked, 4.0, 2.0)
    dis = vecs.astype(np.float64) @ disliked.T.astype(np.float64)
    want = 4.0 * (vecs @ liked.T).max(1) - 2.0 * (dis.max(1) + 0.5 * np.exp((dis - 1) / 0.1).sum(1))
    assert np.allclose(m.terms(vecs), want, atol=1e-6)
    # the closest, not the mean: a candidate equal to one liked vector gets the full like weight
    near = (liked[0] @ disliked.T).astype(np.float64)
    assert m.terms(liked[:1])[0] >= 4.0 - 2.0 * (near.max() + 0.5 * np.exp((near - 1) / 0.1).sum()) - 1e-6
    assert np.allclose(moves(vecs[0], liked[:0], disliked[:0], 4.0, 2.0).terms(vecs), 0)


def test_once_something_is_liked_repeated_dislikes_push_their_niche_away() -> None:
    """Two niches of creators (cosine 0.95 within one); the query ranks niche A first. Four of
    A disliked, with a like elsewhere: the rest of A falls under B, which nobody marked. The
    same four without a like, or the closest-disliked term alone, keep A ahead: dislikes alone
    do not push a brand's own niche away."""
    rng = np.random.default_rng(2)
    centres = l2_normalize(rng.normal(size=(3, 16)))
    niche = [l2_normalize(np.sqrt(0.95) * c + np.sqrt(0.05) * l2_normalize(rng.normal(size=(6, 16)))) for c in centres]
    a, b, elsewhere = niche
    nothing = np.zeros((0, 16))
    base_a, base_b = 0.5, 0.0  # the query's own scores: niche A ahead

    def order_kept(liked: np.ndarray) -> bool:
        m = moves(a[0], liked, a[:4], 4.0, 1.0)
        return bool((base_a + m.terms(a[4:])).min() > (base_b + m.terms(b)).max())

    assert not order_kept(elsewhere[:1]) and order_kept(nothing)
    closest = (a[4:] @ a[:4].T).max(1)
    assert np.allclose(moves(a[0], nothing, a[:4], 4.0, 1.0).terms(a[4:]), -closest, atol=1e-6)
    m = moves(a[0], elsewhere[:1], a[:4], 4.0, 1.0)
    sims = (a[4:] @ a[:4].T).astype(np.float64)
    want = 4.0 * (a[4:] @ elsewhere[0]) - (sims.max(1) + 0.5 * np.exp((sims - 1) / 0.1).sum(1))
    assert np.allclose(m.terms(a[4:]), want, atol=1e-5)


def test_the_closest_liked_and_disliked_are_asked_of_the_pooled_space_too() -> None:
    """With the pooled space's vectors, the closest-example cosines mix the two spaces (like
    0.5, dislike 0.75); a candidate without a pooled vector keeps the snapshot's space alone;
    the added-up dislikes stay in the snapshot's space; ``similar``'s seeds join the liked in
    both spaces."""
    rng = np.random.default_rng(5)
    vecs, liked, disliked = (l2_normalize(rng.normal(size=s)) for s in ((6, 8), (2, 8), (3, 8)))
    cvecs, cliked, cdisliked = (l2_normalize(rng.normal(size=s)) for s in ((6, 12), (2, 12), (3, 12)))
    m = moves(vecs[0], liked, disliked, 4.0, 1.0, cliked, cdisliked)
    has = np.array([True, True, True, False, True, True])
    sims = vecs @ disliked.T
    like = 0.5 * (vecs @ liked.T).max(1) + 0.5 * (cvecs @ cliked.T).max(1)
    dislike = 0.25 * sims.max(1) + 0.75 * (cvecs @ cdisliked.T).max(1)
    like[3], dislike[3] = (vecs[3] @ liked.T).max(), sims[3].max()
    sep = cvecs @ _ridge_direction(cliked, cdisliked)  # asked of the pooled space alone
    sep[3] = 0.0
    want = 4.0 * like - (dislike + 0.5 * np.exp((sims - 1) / 0.1).sum(1)) + SEPARATE * sep
    assert np.allclose(m.terms(vecs, cvecs, has), want, atol=1e-6)
    assert m.wants_content and not moves(vecs[0], liked, disliked, 4.0, 1.0).wants_content
    assert np.allclose(m.terms(vecs), moves(vecs[0], liked, disliked, 4.0, 1.0).terms(vecs), atol=1e-9)
    seeds, cseeds = l2_normalize(rng.normal(size=(2, 8))), l2_normalize(rng.normal(size=(2, 12)))
    marked = Marked(
        np.arange(5),
        liked.astype(np.float32),
        disliked.astype(np.float32),
        PARAMS,
        cliked.astype(np.float32),
        cdisliked.astype(np.float32),
    )
    skip, seeded_both = apply(seeds.mean(0), marked, [7], examples=seeds, examples_content=cseeds)
    assert seeded_both is not None and seeded_both.liked_content is not None and skip.tolist() == [0, 1, 2, 3, 4, 7]
    assert np.allclose(seeded_both.liked_content, np.concatenate([cseeds, cliked]), atol=1e-6)
    # the seeds join the liked in the terms, not the searches around the liked nor the Rocchio move
    assert seeded_both.examples == 2 and np.allclose(seeded_both.around, liked, atol=1e-6)
    assert seeded_both.moved is not None
    assert np.allclose(seeded_both.moved, rocchio(seeds.mean(0), liked, disliked, 4.0, 1.0), atol=1e-6)
    _, unknown = apply(seeds.mean(0), marked, examples=seeds)  # the seeds' pooled vectors unknown
    assert unknown is not None and unknown.liked_content is None and unknown.disliked_content is not None
    # nothing liked yet (resolve leaves the like side's pooled vectors None): the seeds' alone
    only_dislikes = Marked(
        np.arange(3),
        np.zeros((0, 8), np.float32),
        disliked.astype(np.float32),
        PARAMS,
        None,
        cdisliked.astype(np.float32),
    )
    _, seeded = apply(seeds.mean(0), only_dislikes, examples=seeds, examples_content=cseeds)
    assert seeded is not None and seeded.liked_content is not None
    assert np.allclose(seeded.liked_content, cseeds, atol=1e-6)


def _ridge_direction(liked: np.ndarray, disliked: np.ndarray) -> np.ndarray:
    """The primal least-squares direction (X^T X + ridge I)^-1 X^T y, y = +1 liked, -1
    disliked, centred: what ``separation`` computes in the dual."""
    x = np.concatenate([liked, disliked]).astype(np.float64)
    y = np.r_[np.ones(len(liked)), -np.ones(len(disliked))]
    return np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ (y - y.mean()))


def test_the_marked_are_told_apart_along_what_the_liked_share() -> None:
    """Three liked creators share one trait (e0) and each has one of its own; one disliked.
    Candidate c1 has the shared trait, c2 the first liked's own: the closest-liked and
    closest-disliked cosines tie (0.5 and 0), and the least-squares separation of the liked
    from the disliked puts c1 first, in the pooled space: the snapshot's own without a head,
    the pooled vectors beside the head's tower with one."""
    e = np.eye(8)
    liked = l2_normalize(np.stack([e[0] + e[1], e[0] + e[2], e[0] + e[3]]))
    disliked = e[5:6]
    c = l2_normalize(np.stack([e[0] + e[6], e[1] + e[7]]))
    no_head = moves(c[0], liked, disliked, 4.0, 1.0, pooled=True)
    t = no_head.terms(c)
    assert t[0] > t[1] + 0.05
    assert np.allclose(ridge_separation(c, liked, disliked, RIDGE), c @ _ridge_direction(liked, disliked), atol=1e-9)
    # the closest-example terms alone tie: a head without the pooled vectors leaves them so
    tie = moves(c[0], liked, disliked, 4.0, 1.0).terms(c)
    assert tie[0] == pytest.approx(tie[1], abs=1e-9)
    # with a head: the candidates' tower vectors are alike (cosine 0 to every marked one),
    # the pooled ones decide; a candidate without a pooled vector gets the tower's terms alone
    tower = np.tile(e[4], (2, 1))
    head = moves(tower[0], liked, disliked, 4.0, 1.0, liked, disliked)
    h = head.terms(tower, c)
    sep = c @ _ridge_direction(liked, disliked)
    assert h[0] - h[1] == pytest.approx(SEPARATE * (sep[0] - sep[1]), abs=1e-9) and sep[0] > sep[1] + 0.1
    unknown = head.terms(tower, c, np.array([False, True]))
    assert unknown[0] == pytest.approx(-0.5 * np.exp(-10), abs=1e-12) and unknown[1] == pytest.approx(h[1])
    # one side only, or a weight of 0: no separation
    assert np.allclose(ridge_separation(c, liked, disliked[:0], RIDGE), 0)
    only_liked = moves(c[0], liked, disliked[:0], 4.0, 1.0, pooled=True).terms(c)
    assert only_liked[0] == pytest.approx(only_liked[1], abs=1e-9)
    unweighted = moves(c[0], liked, disliked, 4.0, 0.0, pooled=True).terms(c)
    assert unweighted[0] == pytest.approx(unweighted[1], abs=1e-9)


def test_resolve_tells_the_pooled_space_from_a_heads() -> None:
    """Without a head (the snapshot's space is the pooled one) the separation uses the
    snapshot's vectors, so ``resolve`` marks it; with a head's space it reads the pooled
    vectors beside them instead."""
    rng = np.random.default_rng(7)
    spaces = {CONTENT_SPACE: l2_normalize(rng.normal(size=(3, 12))), "head_x": l2_normalize(rng.normal(size=(3, 8)))}

    def lookup(ids: list[str]) -> tuple[dict[str, str], list[int]]:
        return dict.fromkeys(ids, "influencer"), [int(a[1:]) for a in ids]

    def exact(space: str, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(seqs, np.int64), spaces[space][np.asarray(seqs, np.int64)]

    fb = Feedback.make(like=["i0", "i1"], dislike=["i2"])
    pooled = resolve(CONTENT_SPACE, 12, fb, lookup, exact)
    assert pooled is not None and pooled.pooled and pooled.liked_content is None
    _, applied = apply(spaces[CONTENT_SPACE][0], pooled)
    assert applied is not None and applied.pooled
    head = resolve("head_x", 8, fb, lookup, exact)
    assert head is not None and not head.pooled
    assert head.liked_content is not None and np.allclose(head.liked_content, spaces[CONTENT_SPACE][:2])


def test_similar_seeds_count_as_liked_so_dislikes_add_up() -> None:
    """``similar``'s seeds are examples: with dislikes only, the accumulated term is there."""
    rng = np.random.default_rng(3)
    seeds, disliked, vecs = (l2_normalize(rng.normal(size=s)) for s in ((2, 8), (3, 8), (5, 8)))
    marked = Marked(np.arange(3), np.zeros((0, 8), np.float32), disliked.astype(np.float32))
    _, with_seeds = apply(seeds.mean(0), marked, examples=seeds)
    _, without = apply(seeds.mean(0), marked)
    assert with_seeds is not None and without is not None
    sims = (vecs @ disliked.T).astype(np.float64)
    assert np.allclose(without.terms(vecs), -sims.max(1), atol=1e-6)
    want = 4.0 * (vecs @ seeds.T).max(1) - (sims.max(1) + 0.5 * np.exp((sims - 1) / 0.1).sum(1))
    assert np.allclose(with_seeds.terms(vecs), want, atol=1e-5)


def test_feedback_is_checked_at_the_boundary() -> None:
    """Each parameter's error names its field (the message follows the field's name)."""
    with pytest.raises(InvalidInput, match="^'a' is both liked and disliked$"):
        Feedback.make(["a", "b"], ["a"])
    with pytest.raises(InvalidInput, match="^like_weight must be a number from 0 to 10, got nan$") as nan:
        Feedback.make(["a"], like_weight=float("nan"))
    assert nan.value.field == "like_weight" and nan.value.message == "must be a number from 0 to 10, got nan"
    with pytest.raises(
        InvalidInput, match=r"^dislike_weight \(2.0\) must be below 1 \+ the like weight \(1.5\)"
    ) as low:
        Feedback.make(["a"], dislike_weight=2.0, like_weight=0.5)
    assert low.value.field == "dislike_weight"
    for bad_params, field in (
        ({"width": 0.0}, "width"),
        ({"like_content": 1.5}, "like_content"),
        ({"accumulate": float("nan")}, "accumulate"),
        ({"neighbours": 0}, "neighbours"),
    ):
        with pytest.raises(InvalidInput) as e:
            FeedbackParams(**bad_params)  # type: ignore[arg-type]
        assert e.value.field == field
    for bad, field, text in (
        ("abc", "like", "like expects a list of influencer ids"),
        ([f"i{n}" for n in range(501)], "like", "like takes at most 500 influencer ids, got 501"),
        (["x" * 201], "like", "like holds 'xxxx"),
    ):
        with pytest.raises(InvalidInput) as e:
            Feedback.make(bad)  # type: ignore[arg-type]
        assert e.value.field == field and str(e.value).startswith(text)
    with pytest.raises(InvalidInput, match="^dislike expects a list of influencer ids$"):
        Feedback.make(None, [1])  # type: ignore[list-item]
    assert Feedback.make([" a ", "a", ""], None).like == ("a",)
    fb = Feedback.make(["a"], None, 2.0)
    assert (fb.like_weight, fb.dislike_weight) == (2.0, PARAMS.dislike_weight) and fb.params.ridge == RIDGE


def test_feedback_params_hold_the_defaults_and_say_what_they_score() -> None:
    """The defaults are the product's; ``describe`` writes the API's ranking text from them,
    each term named only while its weight counts."""
    assert astuple(PARAMS) == (4.0, 1.0, 0.5, 0.1, 0.5, 0.75, 0.25, 0.3, 20, 64) and FeedbackParams() == PARAMS
    assert Feedback().params is PARAMS and Feedback.make().params == PARAMS
    pooled, head = PARAMS.describe(False), PARAMS.describe(True)
    assert pooled.startswith(", plus the feedback terms (like weight x similarity to the closest liked influencer")
    assert "a push that grows with every disliked one nearby" in pooled and "0.25 x the position" in pooled
    assert pooled.endswith("; similarity: the cosine of pooled embeddings")
    assert head.endswith("mixed with the cosine of pooled embeddings (1:1 to the liked, 1:3 to the disliked)")
    bare = replace(PARAMS, accumulate=0.0, separate=0.0, like_content=0.25, dislike_content=0.0).describe(True)
    assert (
        "push" not in bare and "least squares" not in bare and bare.endswith("(3:1 to the liked, 1:0 to the disliked)")
    )


def test_feedback_without_a_head_moves_the_query_and_excludes(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        xb = influencer_vectors(engine)
        first = [h.influencer_id for h in engine.match_brand(BRAND, k=18)]
        liked, disliked = ["pets_creator_01"], first[:2]  # far from the brand; its first two
        fb = Feedback.make(liked, disliked, 1.5, 0.5)
        got = engine.match_brand(BRAND, k=18, feedback=fb)
        ids = [h.influencer_id for h in got]
        assert not set(ids) & {*liked, *disliked} and len(ids) == 15  # the rest, never starved
        q = engine.entry(engine.snapshot, BRAND, "brand").vector
        want, scores = brute_feedback(q, xb, liked, disliked, 1.5, 0.5)
        assert ids == want
        assert [h.score for h in got] == pytest.approx(scores.tolist(), abs=1e-5)
        pets = [a for a in ids[:3] if a.startswith("pets_")]
        assert pets and not any(a.startswith("pets_") for a in first[:3])  # the liked category moved up
        # a filter and feedback together: brute force over the accounts that pass
        fit = engine.match_brand(BRAND, k=18, filters=Filters.make("fitness"), feedback=fb)
        keep = {a for a in xb if a.startswith("fitness_")}
        assert [h.influencer_id for h in fit] == brute_feedback(q, xb, liked, disliked, 1.5, 0.5, keep=keep)[0]


def test_feedback_gathers_candidates_around_the_liked(settings: Settings, small_corpus: Path) -> None:
    """The query's own few candidates are fitness creators; a liked pets creator brings its
    nearest into the list, which the query alone never reaches."""
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        snap, xb = engine.current(), influencer_vectors(engine)
        q = engine.entry(snap, BRAND, "brand").vector
        liked = np.stack([xb["pets_creator_01"]])
        seq = dict(zip(snap.table.ids, snap.table.seq.tolist(), strict=True))
        skip = np.asarray([seq["pets_creator_01"]], np.int64)
        fed = moves(q, liked, liked[:0], 10.0, 0.0)  # no Rocchio move: only the search around
        _, I = retrieve(
            snap,
            q[None],
            3,
            exact=engine.reader.exact,
            candidates=1,
            exclude=[skip],  # noqa: E741
            feedback=[fed],
        )
        got = [snap.table.ids[r] for r in snap.rows(I[0])]
        assert got == brute_feedback(q, xb, ["pets_creator_01"], [], 10.0, 0.0)[0][:3]
        assert sorted(got[:2]) == ["pets_creator_00", "pets_creator_02"] and PARAMS.neighbours >= 3
        alone = [
            snap.table.ids[r]
            for r in snap.rows(
                retrieve(snap, q[None], 3, exact=engine.reader.exact, candidates=1, exclude=[skip])[1][0]
            )
        ]
        assert not any(a.startswith("pets_") for a in alone)


def test_feedback_refuses_unknown_ids_and_brands(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        with pytest.raises(NotFound, match="^like names an unknown influencer: 'nobody'$") as unknown:
            engine.match_brand(BRAND, feedback=Feedback.make(["pets_creator_01", "nobody"]))
        assert unknown.value.field == "like"
        with pytest.raises(NotFound, match="^dislike names a brand, not an influencer: 'brand_peakfit'$") as brand:
            engine.similar("pets_creator_00", feedback=Feedback.make(None, [BRAND]))
        assert brand.value.field == "dislike"
        # a seed cannot also be marked: disliking the one seed would cancel the query itself
        for fb, name in (
            (Feedback.make(None, ["pets_creator_00"]), "disliked"),
            (Feedback.make(["pets_creator_00"]), "liked"),
        ):
            with pytest.raises(InvalidInput, match=f"^'pets_creator_00' is both a seed of similar and {name}$"):
                engine.similar([" pets_creator_00 ", "food_creator_00"], feedback=fb)
        # seeds are trimmed as the feedback's ids are
        assert [h.influencer_id for h in engine.similar([" pets_creator_00 "], k=3)] == [
            h.influencer_id for h in engine.similar("pets_creator_00", k=3)
        ]
    with pytest.raises(InvalidInput, match="^like holds 'xxxx.*longer than 200 characters"):
        Feedback.make(["x" * 1000])


def test_lookalikes_of_several_influencers(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        xb = influencer_vectors(engine)
        seeds = ["pets_creator_00", "food_creator_00", "pets_creator_00"]
        got = [h.influencer_id for h in engine.similar(seeds, k=18)]
        centroid = l2_normalize((xb["pets_creator_00"] + xb["food_creator_00"]) / 2)
        assert got == brute(centroid, xb, {"pets_creator_00", "food_creator_00"})
        fb = Feedback.make(["tech_creator_01"], [got[0]])
        got2 = [h.influencer_id for h in engine.similar(seeds, k=3, filters=Filters.make(min_followers=0), feedback=fb)]
        keep = {a for a in xb if a in set(engine.snapshot.table.ids)}
        # the seeds count as liked in the nearest-example terms
        want, _ = brute_feedback(
            centroid, xb, ["tech_creator_01", "pets_creator_00", "food_creator_00"], [got[0]], 4.0, 1.0, keep=keep
        )
        assert got2 == want[:3]
        seeds_not_liked, _ = brute_feedback(
            centroid, xb, ["tech_creator_01"], [got[0]], 4.0, 1.0, {"pets_creator_00", "food_creator_00"}, keep
        )
        assert seeds_not_liked[:3] != got2
        with pytest.raises(InvalidInput, match="^similar: give 1 to 100 influencers, got 0$"):
            engine.similar([])


def test_feedback_with_a_head_adds_the_nearest_example_terms_to_the_rerank(
    settings: Settings, small_corpus: Path
) -> None:
    """With a head: each candidate's score is the head's rerank score against the brand's
    posts (the list without feedback) plus mix0 * (b * like - c * dislike), like and dislike
    the closest liked's and disliked's cosines in the influencer tower mixed with those in the
    pooled space (``nearest_terms``)."""
    ingest(small_corpus, settings)
    deploy(settings, trained_head(settings))
    with Engine(settings) as engine:
        snap = engine.current()
        assert snap.reranks and snap.head is not None
        mix0 = float(snap.head.mix[0].detach())
        plain = {h.influencer_id: h.score for h in engine.match_brand(BRAND, k=18)}
        first = list(plain)
        liked, disliked = ["pets_creator_01", "pets_creator_02"], first[:1]
        got = engine.match_brand(BRAND, k=18, feedback=Feedback.make(liked, disliked))
        ids = [h.influencer_id for h in got]
        assert not set(ids) & {*liked, *disliked} and len(ids) == 15
        xb, xc = influencer_vectors(engine), influencer_vectors(engine, "pooled")
        terms = nearest_terms(xb, ids, liked, disliked, 4.0, 1.0, xc)
        assert [h.score for h in got] == pytest.approx(
            [plain[a] + mix0 * t for a, t in zip(ids, terms, strict=True)], abs=1e-4
        )
        tower_only = nearest_terms(xb, ids, liked, disliked, 4.0, 1.0)
        assert not np.allclose(terms, tower_only, atol=1e-3)  # the pooled space counts
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        assert [a for a in ids if a.startswith("pets_")] == ["pets_creator_00"] and ids[0] == "pets_creator_00"
        # look-alikes of a set, dislikes only: the seeds count as liked, in both spaces
        seeds = ["pets_creator_00", "food_creator_00"]
        plain_similar = [h.influencer_id for h in engine.similar(seeds, k=18)]
        lookalikes = engine.similar(seeds, k=14, feedback=Feedback.make(None, plain_similar[:1]))
        centroid = l2_normalize((xb[seeds[0]] + xb[seeds[1]]) / 2)
        want, scores = brute_feedback(centroid, xb, seeds, plain_similar[:1], 4.0, 1.0, xc=xc)
        assert [h.influencer_id for h in lookalikes] == want[:14]
        assert [h.score for h in lookalikes] == pytest.approx(scores[:14].tolist(), abs=1e-4)


@pytest.mark.parametrize("with_head", [False, True])
def test_feedback_on_an_empty_pool_answers_an_empty_list(
    settings: Settings, small_corpus: Path, with_head: bool
) -> None:
    """A filter nobody passes, or one whose every account is marked: an empty answer, no error."""
    ingest(small_corpus, settings)
    if with_head:
        deploy(settings, trained_head(settings))
    with Engine(settings) as engine:
        pets = ["pets_creator_00", "pets_creator_01", "pets_creator_02"]
        assert engine.match_brand(BRAND, 5, Filters.make("pets"), feedback=Feedback.make(pets[:1], pets[1:])) == []
        nobody = Filters.make(min_followers=10**12)  # no influencer passes
        assert engine.match_brand(BRAND, 5, nobody, feedback=Feedback.make(pets[:1])) == []
        assert engine.similar("food_creator_00", 5, nobody, feedback=Feedback.make(pets[:1])) == []


def test_the_pool_around_the_liked_is_bounded(settings: Settings, small_corpus: Path) -> None:
    """The moved query adds at most n candidates and each liked influencer ``neighbours``, however
    many accounts are excluded (a search asks for more to make up for them, then is cut)."""
    from congruence.search import retrieve as retrieve_module

    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        snap, xb = engine.current(), influencer_vectors(engine)
        seq = dict(zip(snap.table.ids, snap.table.seq.tolist(), strict=True))
        liked = ["pets_creator_01", "food_creator_01"]
        far = [a for a in xb if a.startswith(("fitness_", "tech_"))]  # excluded, and far from the liked
        skip = np.asarray([seq[a] for a in [*liked, *far]], np.int64)
        vecs = np.stack([xb[a] for a in liked])
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        search = retrieve_module._searcher(snap, None, None, [None])
        pool = retrieve_module._gather(
            [empty], [(0, moves(vecs[0], vecs, vecs[:0], 4.0, 2.0, neighbours=1), 1)], search, [skip]
        )[0][0]
        assert 1 <= len(pool) <= 1 + 2 * 1 and not set(pool.tolist()) & set(skip.tolist())


@pytest.mark.parametrize("with_head", [False, True])
def test_the_feedback_bench_ranks_as_the_product(settings: Settings, small_corpus: Path, with_head: bool) -> None:
    """``bench/feedback.py``'s simulated user, round after round, sees over the benchmark's
    candidates what ``Engine.match_brand(..., feedback=...)`` shows: the bench ranks through the
    product's own path (``Engine.rank``), with its candidates as a selection (every influencer
    here, then a category's, against the product's category filter)."""
    from bench.feedback import FeedbackConfig, candidate_ranker, found_with_feedback

    ingest(small_corpus, settings)
    if with_head:
        deploy(settings, trained_head(settings))
    with Engine(settings) as engine:
        assert (engine.snapshot.head is not None) == with_head
        everyone = set(influencer_vectors(engine))
        bench = candidate_ranker(engine, everyone)
        seen: list[tuple[Feedback, list[str]]] = []

        def recorded(brand: str, k: int, fb: Feedback) -> list[str]:
            seen.append((fb, bench(brand, k, fb)))
            return seen[-1][1]

        partners = {a for a in everyone if a.startswith(("pets_", "food_"))}  # far from the fitness brand
        found = found_with_feedback(recorded, BRAND, partners, FeedbackConfig(rounds=2, shown=4), 4.0, 1.0)
        assert found[-1] > found[0] and any(fb.like and fb.dislike for fb, _ in seen)
        for fb, shown in seen:
            assert shown == [h.influencer_id for h in engine.match_brand(BRAND, 4, feedback=fb)], fb
        fb = seen[-1][0]
        fitness = candidate_ranker(engine, {a for a in everyone if a.startswith("fitness_")})
        assert fitness(BRAND, 5, fb) == [
            h.influencer_id for h in engine.match_brand(BRAND, 5, Filters.make("fitness"), feedback=fb)
        ]
