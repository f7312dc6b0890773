"""Relevance feedback and look-alikes of several influencers, against brute force, with and
without a trained head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from congruence.core.errors import InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.core.vectors import l2_normalize
from congruence.indexer.ingest import ingest
from congruence.indexer.vector_store import VectorStore
from congruence.search.engine import Engine
from congruence.search.feedback import Feedback, apply, rocchio
from congruence.search.filters import Filters
from congruence.training.deploy import deploy

from .test_head_product import trained_head

BRAND = "brand_peakfit"  # a fitness brand: its first list is fitness creators


def influencer_vectors(engine: Engine) -> dict[str, np.ndarray]:
    _, ids, vecs = VectorStore(engine.store).account_vectors(engine.snapshot.space, kind="influencer")
    return dict(zip(ids, vecs, strict=True))


def brute(q: np.ndarray, xb: dict[str, np.ndarray], skip: set[str], keep: set[str] | None = None) -> list[str]:
    ids = [a for a in xb if a not in skip and (keep is None or a in keep)]
    sims = np.stack([xb[a] for a in ids]) @ q
    return [ids[i] for i in np.argsort(-sims, kind="stable")]


def test_rocchio_moves_toward_liked_and_away_from_disliked() -> None:
    rng = np.random.default_rng(0)
    q, liked, disliked = (l2_normalize(rng.normal(size=s).astype(np.float32)) for s in ((8,), (3, 8), (2, 8)))
    moved = rocchio(q, liked, disliked, 0.75, 0.25)
    expected = q + 0.75 * liked.mean(0) - 0.25 * disliked.mean(0)
    assert np.allclose(moved, expected / np.linalg.norm(expected), atol=1e-6)
    assert moved @ liked.mean(0) > q @ liked.mean(0) and moved @ disliked.mean(0) < q @ disliked.mean(0)
    xq, posts, skip = apply(q, None, None, [4])
    assert xq is q and posts is None and skip.tolist() == [4]


def test_feedback_is_checked_at_the_boundary() -> None:
    with pytest.raises(InvalidInput, match="^'a' is both liked and disliked$"):
        Feedback.make(["a", "b"], ["a"])
    with pytest.raises(InvalidInput, match="^like_weight must be a number from 0 to 10, got nan$"):
        Feedback.make(["a"], like_weight=float("nan"))
    with pytest.raises(InvalidInput, match=r"^dislike_weight \(2.0\) must be below 1 \+ like_weight \(1.5\)"):
        Feedback.make(["a"], dislike_weight=2.0, like_weight=0.5)
    assert Feedback.make([" a ", "a", ""], None).like == ("a",)


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
        moved = rocchio(q, np.stack([xb[a] for a in liked]), np.stack([xb[a] for a in disliked]), 1.5, 0.5)
        assert ids == brute(moved, xb, {*liked, *disliked})
        assert [h.score for h in got] == pytest.approx(sorted((xb[a] @ moved for a in ids), reverse=True), abs=1e-5)
        pets = [a for a in ids[:3] if a.startswith("pets_")]
        assert pets and not any(a.startswith("pets_") for a in first[:3])  # the liked category moved up
        # a filter and feedback together: brute force over the accounts that pass
        fit = engine.match_brand(BRAND, k=18, filters=Filters.make("fitness"), feedback=fb)
        keep = {a for a in xb if a.startswith("fitness_")}
        assert [h.influencer_id for h in fit] == brute(moved, xb, {*liked, *disliked}, keep)


def test_feedback_refuses_unknown_ids_and_brands(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        with pytest.raises(NotFound, match="^unknown influencer 'nobody'$"):
            engine.match_brand(BRAND, feedback=Feedback.make(["nobody"]))
        with pytest.raises(NotFound, match="^.brand_peakfit. is a brand, not a influencer$"):
            engine.similar("pets_creator_00", feedback=Feedback.make(None, [BRAND]))


def test_lookalikes_of_several_influencers(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        xb = influencer_vectors(engine)
        seeds = ["pets_creator_00", "food_creator_00", "pets_creator_00"]
        got = [h.influencer_id for h in engine.similar(seeds, k=18)]
        centroid = l2_normalize((xb["pets_creator_00"] + xb["food_creator_00"]) / 2)
        assert got == brute(centroid, xb, {"pets_creator_00", "food_creator_00"})
        fb = Feedback.make(["tech_creator_01"], [got[0]])
        moved = rocchio(centroid, xb["tech_creator_01"][None], xb[got[0]][None], 0.75, 0.25)
        got2 = [h.influencer_id for h in engine.similar(seeds, k=3, filters=Filters.make(min_followers=0),
                                                        feedback=fb)]
        keep = {a for a in xb if a in set(engine.snapshot.table.ids)}
        assert got2 == brute(moved, xb, {"pets_creator_00", "food_creator_00", "tech_creator_01", got[0]}, keep)[:3]
        with pytest.raises(InvalidInput, match="^similar: give 1 to 100 influencers, got 0$"):
            engine.similar([])


def test_feedback_with_a_head_moves_the_query_and_the_rerank(settings: Settings, small_corpus: Path) -> None:
    """With a head: FAISS searches with the Rocchio query (brand tower + liked influencer
    tower vectors); the rerank scores each candidate as the weighted sum of the head's
    scores against the brand's posts, the liked posts and the disliked posts, all with the
    moved pooled vector."""
    ingest(small_corpus, settings)
    deploy(settings, trained_head(settings))
    with Engine(settings) as engine:
        snap = engine.current()
        assert snap.reranks
        head, entry = snap.head, engine.entry(snap, BRAND, "brand")
        assert head is not None and entry.posts is not None
        first = [h.influencer_id for h in engine.match_brand(BRAND, k=18)]
        liked, disliked = ["pets_creator_01", "pets_creator_02"], first[:1]
        fb = Feedback.make(liked, disliked)
        got = engine.match_brand(BRAND, k=18, feedback=fb)
        ids = [h.influencer_id for h in got]
        assert not set(ids) & {*liked, *disliked} and len(ids) == 15
        xb = influencer_vectors(engine)
        per_post = engine.per_post_vectors(snap, list(xb))
        moved = rocchio(entry.vector, np.stack([xb[a] for a in liked]), np.stack([xb[a] for a in disliked]),
                        0.75, 0.25)
        total = 1 + 0.75 - 0.25
        sets = [(entry.posts, 1 / total), (np.concatenate([per_post[a] for a in liked]), 0.75 / total),
                (np.concatenate([per_post[a] for a in disliked]), -0.25 / total)]
        expected = np.zeros(len(ids))
        with torch.no_grad():
            cands = [torch.from_numpy(per_post[a]) for a in ids]
            width = max(len(c) for c in cands)
            cpad = torch.zeros((len(ids), width, cands[0].shape[1]))
            cmask = torch.zeros((len(ids), width), dtype=torch.bool)
            for i, c in enumerate(cands):
                cpad[i, : len(c)], cmask[i, : len(c)] = c, True
            for posts, w in sets:
                b = torch.from_numpy(np.asarray(posts, np.float32))[None]
                s = head.score_sets(b, torch.ones(b.shape[:2], dtype=torch.bool), torch.from_numpy(moved)[None],
                                    cpad[None], cmask[None], head.pool_padded(cpad, cmask)[None])[0]
                expected += w * s.numpy()
        assert [h.score for h in got] == pytest.approx(expected.tolist(), abs=1e-4)
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        plain = {h.influencer_id: h.score for h in engine.match_brand(BRAND, k=18)}
        assert any(abs(plain[h.influencer_id] - h.score) > 1e-3 for h in got)  # the rerank saw the feedback
