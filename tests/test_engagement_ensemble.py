"""The engagement ensemble's parts on small synthetic data (no store, no encoders)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from congruence.core.errors import ModelMismatch
from congruence.engagement.checkpoint import load_model
from congruence.engagement.data import EngagementData, PostFeatures
from congruence.engagement.ensemble import (
    fit_linear,
    fit_pairwise,
    train_ensemble,
    within_spread,
)
from congruence.engagement.features import hand_features
from congruence.engagement.labels import engagement_z, pairwise_accuracy
from congruence.engagement.model import N_SCALARS, EngagementConfig


def _data(n_accounts: int = 60, per: int = 4, seed: int = 0) -> EngagementData:
    """Text-only posts whose likes grow with their number of hashtags (times the account's size)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_accounts), per)
    n = len(groups)
    tags = rng.integers(0, 8, n)
    captions = ["post " + " ".join(f"#t{k}" for k in range(t)) for t in tags]
    likes = np.round(np.repeat(rng.uniform(50, 5000, n_accounts), per) * np.exp(0.3 * tags + rng.normal(0, 0.2, n)))
    hand, hand_mask = hand_features(captions, [None] * n, [0] * n, [False] * n)
    text = rng.normal(size=(n, 8)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    feats = PostFeatures(
        np.zeros((n, 4), np.float32),
        np.zeros(n, bool),
        text,
        np.ones(n, bool),
        np.zeros((n, 8), np.float32),
        np.zeros(n, bool),
        np.full(n, math.log(1000)),
        hand,
        hand_mask,
    )
    return EngagementData(
        [f"p{i}" for i in range(n)],
        [f"a{k}" for k in range(n_accounts)],
        groups,
        likes,
        engagement_z(likes, groups),
        feats,
    )


def test_within_spread_hand_computed() -> None:
    # account 0: mean 2, deviations -1, +1; account 1: no deviation -> sqrt((1 + 1 + 0 + 0) / 4)
    assert within_spread(np.array([1.0, 3, 10, 10]), np.array([0, 0, 1, 1])) == pytest.approx(math.sqrt(0.5))
    assert within_spread(np.zeros(0), np.zeros(0, int)) == 0.0


def test_pairwise_linear_learns_a_planted_feature() -> None:
    data = _data()
    train, test = np.flatnonzero(data.groups < 40), np.flatnonzero(data.groups >= 40)
    d_in = 4 + 2 * 8 + 3 + 2 * N_SCALARS
    lin = fit_linear(data, train, 1e-3, d_in, N_SCALARS)
    acc, pairs = pairwise_accuracy(lin.predict(data.features.take(test)), data.likes[test], data.groups[test])
    assert pairs > 100 and acc > 0.85
    # no pair (one post an account): nothing to learn, zero weights
    assert not fit_linear(data, np.arange(0, len(data), 4), 1e-3, d_in, N_SCALARS).weight.any()


def test_fit_pairwise_holds_a_nuisance_fixed_and_weighs_pairs() -> None:
    # posts in pairs (2k, 2k + 1); which one gets more likes follows content c (weight 1) and
    # posting time t (weight 3), and t moves with c: fitted on c alone, c's weight soaks up t's
    # effect; with the time gap as a nuisance it comes back near 1
    rng = np.random.default_rng(0)
    n = 4000
    c = rng.normal(size=2 * n)
    t = 0.8 * c + 0.6 * rng.normal(size=2 * n)
    first, second = np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2)
    up = rng.random(n) < 1 / (1 + np.exp(-(c[first] - c[second] + 3 * (t[first] - t[second]))))
    i, j = np.where(up, first, second), np.where(up, second, first)
    x = torch.from_numpy(np.c_[c, np.zeros(2 * n)].astype(np.float32))
    confounded = fit_pairwise(x, i, j, 0.0)[0].item()
    held = fit_pairwise(x, i, j, 0.0, nuisance=(t[i] - t[j])[:, None])[0].item()
    assert confounded > 1.6 and abs(held - 1.0) < 0.2, (confounded, held)
    # pair weights: a pair of weight 0 teaches nothing, so turning it round changes nothing
    w = (np.arange(n) < n // 2).astype(float)
    turned_i, turned_j = np.where(w > 0, i, j), np.where(w > 0, j, i)
    torch.testing.assert_close(
        fit_pairwise(x, i, j, 1e-3, pair_weight=w), fit_pairwise(x, turned_i, turned_j, 1e-3, pair_weight=w)
    )
    assert not fit_pairwise(x, np.zeros(0, int), np.zeros(0, int), 1e-3).any()


def test_ensemble_averages_its_members() -> None:
    data = _data()
    rows = np.flatnonzero(data.groups < 40)
    config = EngagementConfig(epochs=2, hidden=8, members=2, val_fraction=0.2, batch_accounts=8)
    ens, logs = train_ensemble(data, rows, config)
    assert [(log.member, log.epoch) for log in logs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    f = data.features.take(np.flatnonzero(data.groups >= 40))
    parts = [m.predict(f) for m in ens.mlps]
    assert ens.linear is not None
    np.testing.assert_allclose(ens.predict(f), 0.5 * (np.mean(parts, axis=0) + ens.linear.predict(f)))
    # the linear half is rescaled to the MLPs' within-account spread on the training posts
    train = data.features.take(rows)
    np.testing.assert_allclose(
        within_spread(ens.linear.predict(train), data.groups[rows]),
        within_spread(np.mean([m.predict(train) for m in ens.mlps], axis=0), data.groups[rows]),
        rtol=1e-4,
    )
    alone, _ = train_ensemble(data, rows, EngagementConfig(epochs=1, hidden=8, members=1, linear_l2=0.0))
    assert alone.linear is None and alone.n_members == 1


@pytest.mark.parametrize("old", ["congruence-engagement/1", "congruence-engagement/2"])  # /2: no evidence test
def test_older_checkpoints_ask_for_retraining(tmp_path: Path, old: str) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format": old}, path)
    with pytest.raises(ModelMismatch, match="older format .* run `congruence engagement train` again"):
        load_model(path)
