"""The engagement model in service: a few MLPs and a pairwise linear model, averaged.

Why an ensemble: on the real Instagram posts (``bench.engagement_instagram``, three held-out
account splits) one MLP's held-out pairwise accuracy moves by about ±0.005 with its seed, and
a pairwise logistic regression on the same inputs ranks as well as the MLP (0.571 vs 0.569)
while making different mistakes; the average of both beats either (0.573). Averaging also
keeps the ranking a user sees from depending on one seed.

Every member predicts the within-account z-score of log-likes: the MLPs are trained with a
regression term for that; the linear model's pairwise logit is rescaled to the MLPs' spread
within an account on the training posts, so the two halves weigh the same in the ranking
(the weighting measured above).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from congruence.engagement.data import EngagementData, PostFeatures
from congruence.engagement.labels import within_pairs
from congruence.engagement.model import (
    EngagementConfig,
    EngagementMLP,
    EpochLog,
    model_inputs,
    scalar_standardisation,
    train_model,
)

LBFGS_STEPS = 200


class PairwiseLinear(nn.Module):
    """score = scale · (w · x) on the MLP's inputs ``x`` (``model_inputs``), own standardisation."""

    scalar_mean: torch.Tensor
    scalar_std: torch.Tensor
    scale: torch.Tensor

    def __init__(self, d_in: int, n_scalars: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scalar_mean", torch.zeros(n_scalars))
        self.register_buffer("scalar_std", torch.ones(n_scalars))
        self.register_buffer("scale", torch.ones(()))

    def inputs(self, f: PostFeatures) -> torch.Tensor:
        return torch.from_numpy(model_inputs(f, self.scalar_mean.numpy(), self.scalar_std.numpy()))

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight

    def predict(self, f: PostFeatures) -> np.ndarray:
        with torch.inference_mode():
            return (self.logit(self.inputs(f)) * self.scale).double().numpy()


def fit_pairwise(
    x: torch.Tensor,
    i: np.ndarray,
    j: np.ndarray,
    l2: float,
    pair_weight: np.ndarray | None = None,
    nuisance: np.ndarray | None = None,
) -> torch.Tensor:
    """Weights w of a pairwise logistic regression, full batch by L-BFGS: the weighted mean of
    softplus(-(w · (x_i - x_j) + v · nuisance)) over the pairs (i more liked than j), plus
    ``l2`` · |w|². ``nuisance``: (pairs, k) columns seen only in training (their weights v are
    fitted and dropped), so that w is estimated with them held fixed; ``pair_weight``: (pairs,)."""
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    if not len(i):
        return w.detach()
    diff = x[torch.from_numpy(i)] - x[torch.from_numpy(j)]
    extra = None if nuisance is None else torch.from_numpy(np.asarray(nuisance, np.float32)).to(x.dtype)
    v = torch.zeros(0 if extra is None else extra.shape[1], dtype=x.dtype, requires_grad=True)
    pw = None if pair_weight is None else torch.from_numpy(np.asarray(pair_weight, np.float64)).to(x.dtype)
    if pw is not None:
        pw = pw / pw.mean()
    opt = torch.optim.LBFGS([w, v], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        margin = diff @ w if extra is None else diff @ w + extra @ v
        terms = nn.functional.softplus(-margin)
        loss = (terms if pw is None else terms * pw).mean() + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def fit_linear(data: EngagementData, rows: np.ndarray, l2: float, d_in: int, n_scalars: int) -> PairwiseLinear:
    """The linear member: ``fit_pairwise`` over every within-account pair of ``rows``."""
    model = PairwiseLinear(d_in, n_scalars)
    f = data.features.take(rows)
    mean, std = scalar_standardisation(f)
    model.scalar_mean.copy_(torch.from_numpy(mean))
    model.scalar_std.copy_(torch.from_numpy(std))
    i, j = within_pairs(data.groups[rows], data.likes[rows])
    with torch.no_grad():
        model.weight.copy_(fit_pairwise(model.inputs(f), i, j, l2))
    return model


def within_spread(values: np.ndarray, groups: np.ndarray) -> float:
    """Root mean square of ``values`` minus their account's mean: the spread that ranks posts."""
    _, g = np.unique(groups, return_inverse=True)
    means = np.bincount(g, weights=values) / np.bincount(g)
    return float(np.sqrt(np.mean((values - means[g]) ** 2))) if len(values) else 0.0


class EngagementEnsemble(nn.Module):
    """The average of ``members`` MLPs' and (when present) the linear model's predicted z-scores."""

    def __init__(self, d_image: int, d_text: int, hidden: int, dropout: float, members: int, linear: bool):
        super().__init__()
        self.d_image, self.d_text, self.hidden, self.dropout = d_image, d_text, hidden, dropout
        self.mlps = nn.ModuleList(EngagementMLP(d_image, d_text, hidden, dropout) for _ in range(members))
        first = self.members[0]
        self.linear = PairwiseLinear(first.d_in, len(first.scalar_mean)) if linear else None

    @property
    def members(self) -> list[EngagementMLP]:
        """The MLPs, typed (``nn.ModuleList`` items are plain modules to a type checker)."""
        return [m for m in self.mlps if isinstance(m, EngagementMLP)]

    @property
    def n_members(self) -> int:
        return len(self.mlps)

    def predict(self, f: PostFeatures) -> np.ndarray:
        """(n,) float64 predicted z-scores: the MLPs' mean, averaged with the linear model's."""
        mlp = np.mean([m.predict(f) for m in self.members], axis=0)
        return mlp if self.linear is None else 0.5 * (mlp + self.linear.predict(f))


def train_ensemble(
    data: EngagementData,
    rows: np.ndarray,
    config: EngagementConfig,
    progress: Callable[[EpochLog], None] | None = None,
    device: str = "cpu",
) -> tuple[EngagementEnsemble, list[EpochLog]]:
    """``config.members`` MLPs (seeds seed·100 + k, each with its own validation accounts) and
    the pairwise linear model (unless ``linear_l2`` is 0), all on the posts at ``rows``."""
    f = data.features
    ens = EngagementEnsemble(
        f.image.shape[1], f.text.shape[1], config.hidden, config.dropout, max(1, config.members), config.linear_l2 > 0
    )
    logs: list[EpochLog] = []
    for k in range(ens.n_members):
        net, member_logs = train_model(
            data, rows, dataclasses.replace(config, seed=config.seed * 100 + k), progress, device, member=k
        )
        ens.mlps[k].load_state_dict(net.cpu().state_dict())
        logs += member_logs
    if ens.linear is not None:
        first = ens.members[0]
        linear = fit_linear(data, rows, config.linear_l2, first.d_in, len(first.scalar_mean))
        train = f.take(rows)
        mlp_spread = within_spread(np.mean([m.predict(train) for m in ens.members], axis=0), data.groups[rows])
        lin_spread = within_spread(linear.predict(train), data.groups[rows])
        linear.scale.fill_(mlp_spread / lin_spread if lin_spread > 0 else 0.0)
        ens.linear = linear
    return ens.eval(), logs
