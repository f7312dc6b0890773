from __future__ import annotations

import numpy as np
import pytest

from congruence.store.postsets import PostSets
from congruence.training.data import (
    assert_no_leak,
    brand_disjoint_split,
    build_ranking_data,
    held_out_influencers,
    index_pairs,
    sample_candidate_lists,
)

from .training_synthetic import POSITIVES_PER_BRAND, TEST_BRANDS, TRAIN_BRANDS

BRANDS = [f"b{i}" for i in range(10)]


def test_split_is_seeded_and_disjoint() -> None:
    split = brand_disjoint_split(BRANDS + ["b3"], test_fraction=0.3, seed=1)
    assert split == brand_disjoint_split(BRANDS, test_fraction=0.3, seed=1)
    assert len(split.test_brands) == 3 and sorted(split.train_brands + split.test_brands) == sorted(BRANDS)
    assert not set(split.train_brands) & set(split.test_brands)


def test_split_with_given_test_brands() -> None:
    split = brand_disjoint_split(BRANDS, test_brands=["b2", "b7"])
    assert split.test_brands == ("b2", "b7") and len(split.train_brands) == 8
    with pytest.raises(ValueError, match="test_brands names unknown brand ids: zz"):
        brand_disjoint_split(BRANDS, test_brands=["b2", "zz"])


def test_assert_no_leak_names_the_brands() -> None:
    assert_no_leak(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="^brands in both train and test: b, c$"):
        assert_no_leak(["a", "b", "c"], ["c", "b", "d"])


def test_index_pairs_checks_ids_and_kinds(synthetic: tuple[PostSets, list]) -> None:
    postsets, _ = synthetic
    with pytest.raises(ValueError, match="pairs: unknown account id 'nobody'"):
        index_pairs(postsets, [("b0", "nobody")])
    with pytest.raises(ValueError, match="pairs: 'i0_0' is not a brand"):
        index_pairs(postsets, [("i0_0", "i0_1")])


def test_held_out_influencers() -> None:
    pairs = [("b0", "x"), ("b1", "x"), ("b1", "y"), ("b2", "z")]
    assert held_out_influencers(pairs, {"b0", "b2"}) == {"y"}


def test_candidate_lists(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    data = build_ranking_data(postsets, pairs, TRAIN_BRANDS)
    held = {postsets.index_of()[f"i{b[1:]}_{j}"] for b in TEST_BRANDS for j in range(POSITIVES_PER_BRAND)}
    assert data.brand_rows.size == len(TRAIN_BRANDS) and not held & set(data.influencer_rows.tolist())
    lists = sample_candidate_lists(data, np.arange(4), 8, 0.5, np.random.default_rng(0))
    again = sample_candidate_lists(data, np.arange(4), 8, 0.5, np.random.default_rng(0))
    assert np.array_equal(lists.rows, again.rows)
    assert lists.rows.shape == (4, 8) and lists.mask.all()
    for k in range(4):
        positives = set(data.positives[k].tolist())
        assert lists.labels[k].tolist() == [1.0] * 3 + [0.0] * 5  # all 3 positives fit in half of 8
        assert set(lists.rows[k, :3].tolist()) == positives
        negatives = lists.rows[k, 3:]
        assert len(set(negatives.tolist())) == 5 and not positives & set(negatives.tolist())
        brand_category = data.category_ids[data.brand_rows[k]]
        available = set(data.pool_by_category[brand_category].tolist()) - positives
        hard = (data.category_ids[negatives] == brand_category).sum()
        assert hard >= min(2, len(available)) and len(available) >= 2  # round(0.5 * 5) are hard


def test_short_pool_is_masked(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    data = build_ranking_data(postsets, pairs, {"b0"})
    lists = sample_candidate_lists(data, np.array([0]), 64, 0.0, np.random.default_rng(0))
    assert lists.mask.sum() == data.influencer_rows.size and lists.labels.sum() == POSITIVES_PER_BRAND


def test_lookalike_negatives_are_the_closest_non_partners(synthetic: tuple[PostSets, list]) -> None:
    """Brute force, with this test's own mean of each account's posts: the n pool
    influencers closest to the brand by cosine, its positives left out."""
    postsets, pairs = synthetic
    data = build_ranking_data(postsets, pairs, TRAIN_BRANDS)

    def mean_dir(r: int) -> np.ndarray:
        v = postsets.features[postsets.offsets[r] : postsets.offsets[r + 1]].astype(np.float64).mean(axis=0)
        return v / np.linalg.norm(v)

    pool = data.influencer_rows
    for b, pos, alike in zip(data.brand_rows, data.positives, data.lookalikes, strict=True):
        sims = np.array([mean_dir(int(i)) @ mean_dir(int(b)) for i in pool])
        ranked = [int(pool[j]) for j in np.argsort(-sims, kind="stable") if pool[j] not in pos]
        assert alike.tolist() == ranked[: len(alike)] and len(alike) == min(64, len(ranked))
    lists = sample_candidate_lists(data, np.arange(4), 8, 0.0, np.random.default_rng(0), lookalike_fraction=0.5)
    for i, b in enumerate(range(4)):
        negatives = lists.rows[i][lists.mask[i] & (lists.labels[i] == 0)]
        assert np.isin(negatives, data.lookalikes[b]).sum() >= round(0.5 * negatives.size)
