from __future__ import annotations

import math

import numpy as np
import pytest

from congruence.training.ranking_metrics import (
    auc,
    category_auc,
    evaluate_rankings,
    first_rank,
    recall_at_k,
    reciprocal_rank,
)

# ranking (ties go against positives): 0.9 (neg), 0.5 (neg), 0.5 (pos), 0.1 (pos)
SCORES = np.array([0.5, 0.5, 0.9, 0.1])
POSITIVES = np.array([True, False, False, True])
CATEGORIES = ["a", "a", "b", "a"]


def test_auc_counts_ties_as_half() -> None:
    # pos 0.9 beats both negatives (2); pos 0.8 ties 0.8 (0.5) and beats 0.1 (1): 3.5 / 4
    assert auc(np.array([0.9, 0.8, 0.8, 0.1]), np.array([True, False, True, False])) == 0.875
    # pos 0.5: tie with 0.5 (0.5), below 0.9 (0); pos 0.1: below both (0) -> 0.5 / 4
    assert auc(SCORES, POSITIVES) == 0.125


def test_auc_is_nan_without_both_classes() -> None:
    assert math.isnan(auc(SCORES, np.zeros(4, bool)))
    assert math.isnan(auc(SCORES, np.ones(4, bool)))


def test_recall_first_rank_reciprocal_rank() -> None:
    assert recall_at_k(SCORES, POSITIVES, 1) == 0.0
    assert recall_at_k(SCORES, POSITIVES, 2) == 0.0
    assert recall_at_k(SCORES, POSITIVES, 3) == 0.5
    assert recall_at_k(SCORES, POSITIVES, 10) == 1.0
    assert first_rank(SCORES, POSITIVES) == 3
    assert reciprocal_rank(SCORES, POSITIVES) == pytest.approx(1 / 3)


def test_first_rank_needs_a_positive() -> None:
    with pytest.raises(ValueError, match="positives: expected at least one True"):
        first_rank(SCORES, np.zeros(4, bool))
    assert reciprocal_rank(SCORES, np.zeros(4, bool)) == 0.0


def test_category_auc() -> None:
    # category "a" keeps items 0, 1, 3: scores (0.5, 0.5, 0.1), positives (T, F, T):
    # pos 0.5 ties neg 0.5 (0.5), pos 0.1 below it (0) -> 0.25
    assert category_auc(SCORES, POSITIVES, "a", CATEGORIES) == 0.25
    assert math.isnan(category_auc(SCORES, POSITIVES, "b", CATEGORIES))  # no positive in "b"
    assert math.isnan(category_auc(SCORES, POSITIVES, "", CATEGORIES))


def test_evaluate_rankings_aggregates_over_brands() -> None:
    scores = np.vstack([SCORES, [0.1, 0.9, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]])
    positives = np.vstack([POSITIVES, [False, True, False, False], np.zeros(4, bool)])
    m = evaluate_rankings(scores, positives, ["x", "y", "z"], ["a", "b", ""], CATEGORIES)
    # brand z has no positive and is skipped; y ranks its only positive first (auc 1, rank 1)
    assert m.n_brands == 2 and [b.brand_id for b in m.per_brand] == ["x", "y"]
    assert m.auc == pytest.approx((0.125 + 1.0) / 2)
    assert m.cauc == 0.25  # y's category "b" holds only a negative: nan, skipped
    assert m.medr == 2.0 and m.mrr == pytest.approx((1 / 3 + 1) / 2)
    assert m.recall_at_10 == 1.0 and m.recall_at_50 == 1.0
    assert m.to_dict() == {
        "auc": pytest.approx(0.5625),
        "cauc": 0.25,
        "recall@10": 1.0,
        "recall@50": 1.0,
        "medr": 2.0,
        "mrr": pytest.approx(2 / 3),
        "n_brands": 2,
    }


def test_to_dict_turns_nan_into_none() -> None:
    m = evaluate_rankings(np.zeros((1, 2)), np.zeros((1, 2), bool), ["x"], ["a"], ["a", "a"])
    assert m.n_brands == 0
    assert m.to_dict()["auc"] is None and m.to_dict()["medr"] is None
