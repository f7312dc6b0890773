from __future__ import annotations

import numpy as np
import pytest

from congruence.store.postsets import PostSets
from congruence.training.evaluate import (
    evaluate,
    head_scorer,
    markdown_table,
    mean_features,
    pooled_cosine,
    random_scorer,
)
from congruence.training.evaluate import (
    test_candidates as candidates_of,
)
from congruence.training.model import CongruenceHead, HeadConfig

from .training_synthetic import N_UNPAIRED, POSITIVES_PER_BRAND, TEST_BRANDS


def test_candidates_exclude_train_only_influencers(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    ids = {postsets.account_ids[r] for r in candidates_of(postsets, pairs, TEST_BRANDS)}
    paired = {f"i{b[1:]}_{j}" for b in TEST_BRANDS for j in range(POSITIVES_PER_BRAND)}
    assert ids == paired | {f"u{u}" for u in range(N_UNPAIRED)}


def test_evaluation_refuses_a_leaking_split(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    with pytest.raises(ValueError, match="^brands in both train and test: b4$"):
        evaluate(random_scorer(), postsets, pairs, ["b4", "b5"], train_brands=["b0", "b4"])
    model = CongruenceHead(HeadConfig(d_image=8, d_text=4, d_model=8, d_hidden=8))
    model.train_brands = ("b1", "b5")
    with pytest.raises(ValueError, match="^brands in both train and test: b5$"):
        evaluate(model, postsets, pairs, ["b4", "b5"])


def test_evaluate_unknown_brand(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    with pytest.raises(ValueError, match="test_brands names unknown brand ids: zz"):
        evaluate(random_scorer(), postsets, pairs, ["zz"])


def test_pooled_cosine_matches_brute_force(synthetic: tuple[PostSets, list]) -> None:
    postsets, _ = synthetic
    rows = np.array([0, 3, 7])
    means = np.stack([postsets.posts_of(int(r)).mean(0) for r in rows])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    assert np.allclose(mean_features(postsets, rows), means, atol=1e-6)
    assert np.allclose(pooled_cosine(postsets, rows[:1], rows), means[:1] @ means.T, atol=1e-6)


def test_untrained_head_scores_like_score_candidates(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    model = CongruenceHead(HeadConfig(d_image=8, d_text=4, d_model=8, d_hidden=8)).eval()

    def scorer(ps: PostSets, brand_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        proj = model.project_posts(ps)
        sets = [proj[ps.offsets[r] : ps.offsets[r + 1]] for r in cand_rows]
        return np.stack([model.score_candidates(proj[ps.offsets[b] : ps.offsets[b + 1]], sets) for b in brand_rows])

    by_head = evaluate(model, postsets, pairs, TEST_BRANDS)
    assert by_head.to_dict() == evaluate(scorer, postsets, pairs, TEST_BRANDS).to_dict()
    brand_rows, cand_rows = np.array([0, 4, 8]), candidates_of(postsets, pairs, TEST_BRANDS)
    chunked = head_scorer(model, brand_chunk=2, max_pairs=50)(postsets, brand_rows, cand_rows)
    assert np.allclose(chunked, scorer(postsets, brand_rows, cand_rows), atol=1e-5)


def test_markdown_table(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    table = markdown_table({"random": evaluate(random_scorer(0), postsets, pairs, TEST_BRANDS)})
    lines = table.splitlines()
    assert lines[0] == "| method | AUC | cAUC | R@10 | R@50 | MedR | MRR | brands |"
    assert lines[2].startswith("| random | ") and lines[2].endswith(f" | {len(TEST_BRANDS)} |")
