"""Engagement labels, the pairwise metric and the congruence regression, on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from congruence.core.errors import InvalidInput
from congruence.engagement.effect import fit_effect, post_controls
from congruence.engagement.labels import (
    engagement_z,
    pairwise_accuracy,
    robust_z,
    within_pairs,
    z_to_score,
)
from congruence.engagement.model import split_accounts
from congruence.engagement.service import rank_scores


def test_robust_z_median_and_mad() -> None:
    # median 2.5, |x - 2.5| = 1.5, .5, .5, 7.5 -> MAD 1.0 -> scale 1.4826; 10 clips at 3
    z = robust_z(np.array([1.0, 2.0, 3.0, 10.0]))
    np.testing.assert_allclose(z, [-1.5 / 1.4826, -0.5 / 1.4826, 0.5 / 1.4826, 3.0], rtol=1e-6)


def test_robust_z_zero_mad_falls_back_to_mean_deviation() -> None:
    # MAD 0; mean |x - 5| = 1 -> scale 1.2533; (9 - 5) / 1.2533 = 3.19 clips at 3
    np.testing.assert_allclose(robust_z(np.array([5.0, 5, 5, 9])), [0, 0, 0, 3.0])
    np.testing.assert_allclose(robust_z(np.array([5.0, 5, 6])), [0, 0, (6 - 5) / (1.2533 / 3)], rtol=1e-6)
    assert robust_z(np.array([4.0, 4.0])).tolist() == [0.0, 0.0]


def test_engagement_z_is_within_account_on_log_likes() -> None:
    e = math.e
    likes = np.array([0, e - 1, 100, 100, 7])
    groups = np.array([0, 0, 1, 1, 2])
    # account 0: log1p = 0, 1 -> median .5, MAD .5 -> z = -/+ .5 / (1.4826 * .5)
    z = engagement_z(likes, groups)
    np.testing.assert_allclose(z, [-1 / 1.4826, 1 / 1.4826, 0, 0, 0], rtol=1e-6)
    # accounts are standardised apart: scaling one account's likes changes nothing
    np.testing.assert_allclose(
        engagement_z(np.array([10, 30, 1000, 3000]), np.array([0, 0, 1, 1])),
        engagement_z(np.array([10, 30, 10, 30]), np.array([0, 0, 1, 1])),
    )


def test_z_to_score_is_ten_phi() -> None:
    np.testing.assert_allclose(
        z_to_score(np.array([0.0, 1.0, -1.0, 3.0])), [5.0, 8.413447, 1.586553, 9.986501], atol=1e-6
    )


def test_pairwise_accuracy_hand_computed() -> None:
    groups = np.array([0, 0, 0, 1, 1])
    likes = np.array([10, 20, 30, 5, 5])  # account 1 ties: no pair there
    # pairs (20>10) pred 3>1 right, (30>10) 2>1 right, (30>20) 2<3 wrong
    assert pairwise_accuracy(np.array([1.0, 3, 2, 0, 1]), likes, groups) == (pytest.approx(2 / 3), 3)
    # a tie in the prediction counts half
    assert pairwise_accuracy(np.array([1.0, 1, 2, 0, 1]), likes, groups) == (pytest.approx(2.5 / 3), 3)
    assert pairwise_accuracy(np.zeros(5), likes, groups) == (0.5, 3)
    acc, n = pairwise_accuracy(np.zeros(2), np.array([1, 1]), np.array([0, 0]))
    assert math.isnan(acc) and n == 0


def test_pairs_never_cross_accounts() -> None:
    # interleaved rows: groups need not be contiguous
    i, j = within_pairs(np.array([0, 1, 0, 1]), np.array([1, 100, 2, 50]))
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(1, 3), (2, 0)]
    # a predictor that only knows the account (e.g. its follower count) ties every pair
    assert pairwise_accuracy(np.array([7.0, 3, 7, 3]), np.array([1, 100, 2, 50]), np.array([0, 1, 0, 1]))[0] == 0.5


def test_rank_scores_breaks_ties_by_input_order() -> None:
    assert rank_scores([2.0, 9.0, 2.0, 5.0]) == [3, 1, 4, 2]


def test_split_accounts_is_seeded_and_disjoint() -> None:
    ids = [f"a{i}" for i in range(10)]
    rest, held = split_accounts(ids, 0.2, seed=3)
    assert len(held) == 2 and not set(rest) & set(held) and set(rest) | set(held) == set(ids)
    assert split_accounts(list(reversed(ids)), 0.2, seed=3) == (rest, held)
    assert split_accounts(["a"], 0.5, 0) == (["a"], [])


def _synthetic(beta: float, seed: int = 0, n_acc: int = 200, per: int = 8) -> tuple:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_acc), per)
    n = len(groups)
    cong = rng.uniform(0.2, 0.9, n)
    hashtags = rng.poisson(3, n).astype(float)
    followers = np.repeat(rng.integers(5_000, 100_000, n_acc), per).astype(float)
    account_effect = np.repeat(rng.normal(0, 0.3, n_acc), per)
    y = beta * cong + 0.1 * hashtags + account_effect + rng.normal(0, 0.5, n)
    controls = {"log_followers": np.log1p(followers), "hashtags": hashtags, "sponsored": np.zeros(n)}
    return y, cong, controls, groups


def test_regression_recovers_a_planted_coefficient() -> None:
    y, cong, controls, groups = _synthetic(beta=0.8)
    res = fit_effect(y, cong, controls, groups)
    assert res.ci[0] < 0.8 < res.ci[1] and abs(res.coef - 0.8) < 0.15
    assert res.p_value < 1e-6 and res.n == 1600 and res.n_accounts == 200
    assert res.controls == ("log_followers", "hashtags")  # the constant column is dropped
    assert 0 < res.r2 < 1 and res.reading.startswith("Posts tagging a brand that is more congruent")
    assert res.coef_sd == pytest.approx(res.coef * float(np.std(cong)), abs=1e-3)


def test_regression_finds_nothing_where_nothing_was_planted() -> None:
    y, cong, controls, groups = _synthetic(beta=0.0, seed=1)
    res = fit_effect(y, cong, controls, groups)
    assert res.p_value > 0.05 and res.ci[0] < 0 < res.ci[1]
    assert res.reading.startswith("No significant association")
    d = res.to_dict()
    assert set(d) >= {"coefficient", "ci95", "p_value", "r2", "n", "reading"}


def test_regression_refuses_too_few_posts() -> None:
    with pytest.raises(InvalidInput, match="too few posts for the regression: 3 with 1 controls"):
        fit_effect(np.array([1.0, 2, 3]), np.array([0.1, 0.2, 0.4]), {"x": np.array([1.0, 2, 2])}, np.arange(3))


def test_post_controls() -> None:
    c = post_controls(["Hi #a #b @x", ""], np.array([99.0, -1]), np.array([2, 0]), np.array([True, False]))
    assert c["hashtags"].tolist() == [2, 0] and c["mentions"].tolist() == [1, 0]
    assert c["log_followers"].tolist() == [math.log(100), 0.0] and c["sponsored"].tolist() == [1, 0]
