from __future__ import annotations

import numpy as np
import pytest
import torch

from congruence.store.postsets import PostSets
from congruence.training.data import brand_disjoint_split
from congruence.training.evaluate import evaluate, pooled_cosine, random_scorer
from congruence.training.loop import EpochStats, TrainConfig, TrainResult, train
from congruence.training.model import CongruenceHead, HeadConfig

from .training_synthetic import TEST_BRANDS, TRAIN_BRANDS

HEAD = HeadConfig(d_image=8, d_text=4, d_model=16, d_hidden=32, dropout=0.0)
CONFIG = TrainConfig(epochs=20, lr=5e-3, batch_brands=4, list_size=8, seed=0, device="cpu")


def _train(synthetic: tuple[PostSets, list], config: TrainConfig = CONFIG) -> TrainResult:
    postsets, pairs = synthetic
    split = brand_disjoint_split([b for b, _ in pairs], test_brands=TEST_BRANDS)
    assert split.train_brands == tuple(sorted(TRAIN_BRANDS))
    return train(postsets, pairs, config, HEAD, train_brands=split.train_brands)


@pytest.fixture(scope="module")
def trained(synthetic: tuple[PostSets, list]) -> TrainResult:
    return _train(synthetic)


def test_loss_decreases(trained: TrainResult) -> None:
    losses = [s.loss for s in trained.history]
    assert len(losses) == CONFIG.epochs
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert all(s.aux_loss > 0 for s in trained.history)


def test_head_beats_random_on_held_out_brands(trained: TrainResult, synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    assert trained.model.train_brands == tuple(sorted(TRAIN_BRANDS))
    head = evaluate(trained.model, postsets, pairs, TEST_BRANDS)
    chance = evaluate(random_scorer(0), postsets, pairs, TEST_BRANDS)
    torch.manual_seed(CONFIG.seed)
    untrained = evaluate(CongruenceHead(HEAD), postsets, pairs, TEST_BRANDS)
    cosine = evaluate(pooled_cosine, postsets, pairs, TEST_BRANDS)
    assert head.n_brands == len(TEST_BRANDS)
    # the planted signal is learnable: the head learns to ignore the nuisance dimensions
    assert head.auc > chance.auc + 0.25 and head.auc > untrained.auc + 0.05 and head.auc > cosine.auc


def test_same_seed_same_scores(trained: TrainResult, synthetic: tuple[PostSets, list]) -> None:
    postsets, _ = synthetic
    again = _train(synthetic)
    assert [s.loss for s in again.history] == [s.loss for s in trained.history]
    assert np.array_equal(again.model.encode_accounts(postsets), trained.model.encode_accounts(postsets))


def test_training_leaves_global_rng_alone(synthetic: tuple[PostSets, list]) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _train(synthetic, TrainConfig(epochs=1, batch_brands=2, list_size=8, device="cpu"))
    assert torch.equal(torch.rand(3), expected)


def test_listmle_without_aux_task_and_mean_pooling(synthetic: tuple[PostSets, list]) -> None:
    seen: list[EpochStats] = []
    postsets, pairs = synthetic
    config = TrainConfig(
        epochs=2,
        batch_brands=3,
        list_size=6,
        loss="listmle",
        aux_weight=0.0,
        hard_negative_fraction=1.0,
        max_posts=2,
        device="cpu",
    )
    result = train(
        postsets,
        pairs,
        config,
        HeadConfig(d_image=8, d_text=4, d_model=8, d_hidden=8, pooling="mean"),
        progress=seen.append,
    )
    assert len(seen) == 2 and result.model.classifier is None and result.model.categories == ()
    assert all(s.aux_loss == 0.0 and np.isfinite(s.loss) for s in seen)


def test_bad_inputs_are_refused(synthetic: tuple[PostSets, list]) -> None:
    postsets, pairs = synthetic
    with pytest.raises(ValueError, match="loss must be listnet or listmle, got 'hinge'"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="head_config: d_image=4, d_text=4 do not match postsets"):
        train(postsets, pairs, CONFIG, HeadConfig(d_image=4, d_text=4))
    with pytest.raises(ValueError, match="pairs: no training brand has a positive influencer"):
        train(postsets, pairs, CONFIG, HEAD, train_brands=["nobody"])


def test_the_geometry_loss_keeps_the_frozen_features_neighbours(
    trained: TrainResult, synthetic: tuple[PostSets, list]
) -> None:
    """With --geometry-weight the trained projection of every post keeps the raw features'
    neighbours far better than the ranking loss alone leaves them; the weight is validated."""
    from dataclasses import replace

    from congruence.core.errors import InvalidInput
    from congruence.training.losses import geometry_loss

    postsets, _ = synthetic
    raw = torch.from_numpy(np.asarray(postsets.features, np.float32))

    def drift(model: CongruenceHead) -> float:
        with torch.no_grad():
            return geometry_loss(raw, model.project(raw)).item()

    assert CONFIG.geometry_weight == 0.0  # the default: off
    kept = _train(synthetic, replace(CONFIG, geometry_weight=3.0))
    assert drift(kept.model) < 0.5 * drift(trained.model)
    with pytest.raises(InvalidInput, match="at least 0"):
        TrainConfig(geometry_weight=-1.0)
