"""The engagement model: a small MLP from a post's embeddings to its expected engagement.

Input per post: [image emb | has image | caption emb | has caption | alt emb | has alt |
standardised log followers and hand-made features (``features``) | their masks];
missing modalities are zeros with their mask bit off, so one model serves image-only,
text-only and mixed corpora. Output: one number, the predicted within-account z-score of
log-likes (higher = more attention expected). The hand-made features also get a linear
path of their own (wide & deep): on the real Instagram posts a pairwise linear model on
them alone ranks about as well as the MLP on the embeddings.

Trained with a logistic pairwise loss over posts of one account (the more-liked one should
score higher) plus ``regression_weight`` × MSE to the z-score, which anchors the scale so
that the output maps onto the 0-10 score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from congruence.engagement.data import EngagementData, PostFeatures
from congruence.engagement.features import N_ALT, N_CAPTION, N_FEATURES, N_POST
from congruence.engagement.labels import pairwise_accuracy, within_pairs

logger = logging.getLogger(__name__)
N_SCALARS = 1 + N_FEATURES  # log followers, then the hand-made features
N_SCALAR_COLS = 2 * N_SCALARS  # the scalars, then their masks: the last input columns
MIN_STEPS = 16
PARTS = 5  # image, caption, alt, followers, tags and paid flag: what modality dropout may hide
# scalar columns of each part that modality dropout hides (0 is log followers)
_CAPTION_COLS = slice(1, 1 + N_CAPTION)
_POST_COLS = slice(1 + N_CAPTION, 1 + N_CAPTION + N_POST)
_ALT_COLS = slice(1 + N_CAPTION + N_POST, 1 + N_CAPTION + N_POST + N_ALT)


def _scalars(f: PostFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(n, N_SCALARS) [log followers | hand-made features] float64 and its mask."""
    fol = np.asarray(f.log_followers, np.float64)[:, None]
    raw = np.concatenate([fol, np.asarray(f.hand, np.float64)], axis=1)
    mask = np.concatenate([np.isfinite(fol), np.asarray(f.hand_mask, bool)], axis=1)
    return raw, mask


def scalar_standardisation(f: PostFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(N_SCALARS,) float32 mean and standard deviation of each scalar over the posts where it is known."""
    raw, mask = _scalars(f)
    mean, std = np.zeros(N_SCALARS, np.float32), np.ones(N_SCALARS, np.float32)
    for k in range(N_SCALARS):
        v = raw[mask[:, k], k]
        mean[k] = float(v.mean()) if len(v) else 0.0
        std[k] = max(float(v.std()), 1e-6) if len(v) > 1 else 1.0
    return mean, std


def model_inputs(f: PostFeatures, mean: np.ndarray, std: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """(n, d_image + 2 d_text + 3 + N_SCALAR_COLS) float32: [image | has | caption | has | alt | has |
    standardised scalars (0 where unknown) | their masks]. ``keep``: (n, PARTS) bool, False drops a
    part as if missing (image, caption, alt, followers, tags and paid flag) — modality dropout."""
    keep = np.ones((len(f), PARTS), bool) if keep is None else keep
    raw, mask = _scalars(f)
    im, tm, am = f.image_mask & keep[:, 0], f.text_mask & keep[:, 1], f.alt_mask & keep[:, 2]
    mask[:, 0] &= keep[:, 3]
    mask[:, _CAPTION_COLS] &= tm[:, None]  # caption features go with the caption
    mask[:, _ALT_COLS] &= keep[:, 2:3]  # alt-text concepts with the alt text
    mask[:, _POST_COLS] &= keep[:, 4:5]
    scal = np.where(mask, (np.nan_to_num(raw) - mean) / std, 0.0)
    cols = [
        f.image * im[:, None],
        im[:, None],
        f.text * tm[:, None],
        tm[:, None],
        f.alt * am[:, None],
        am[:, None],
        scal,
        mask,
    ]
    return np.concatenate([np.asarray(c, np.float32) for c in cols], axis=1)


@dataclass(frozen=True)
class EngagementConfig:
    """hidden: MLP width; dropout: on the input and hidden layer; regression_weight: MSE
    weight next to the pairwise loss; val_fraction: share of training accounts kept aside
    to pick the best epoch (0 = use the last); modality_dropout: chance that a post's image,
    caption, alt text, follower count or tags and paid flag are hidden in a training step, so
    the model also scores posts missing some (a new post has no alt text and no tags yet);
    members: MLPs trained with different seeds (and validation accounts) whose predictions
    are averaged (``ensemble``); linear_l2: L2 penalty of the pairwise linear model
    averaged with them (0 leaves it out).

    On the real Instagram posts a slower learning rate with more epochs held out better
    than 1e-3 x 30 (3 splits: 0.569 vs 0.561 pairwise accuracy): the best validation epoch
    of a faster run is picked from noisier weights."""

    epochs: int = 40
    hidden: int = 128
    dropout: float = 0.3
    lr: float = 3e-4
    weight_decay: float = 1e-3
    batch_accounts: int = 256
    regression_weight: float = 0.5
    val_fraction: float = 0.1
    modality_dropout: float = 0.15
    members: int = 3
    linear_l2: float = 1e-3
    seed: int = 0


class EngagementMLP(nn.Module):
    """Standardisation statistics of log followers and the hand-made features travel as buffers."""

    scalar_mean: torch.Tensor
    scalar_std: torch.Tensor

    def __init__(self, d_image: int, d_text: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.d_image, self.d_text, self.hidden, self.dropout = d_image, d_text, hidden, dropout
        self.register_buffer("scalar_mean", torch.zeros(N_SCALARS))
        self.register_buffer("scalar_std", torch.ones(N_SCALARS))
        self.d_in = d_in = d_image + d_text * 2 + 3 + N_SCALAR_COLS
        # dropout on the embeddings only: dropping the few scalar inputs would hide the counts
        # that carry much of the signal; those also get a linear path of their own (wide & deep)
        self.embedding_dropout = nn.Dropout(dropout)
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.wide = nn.Linear(N_SCALAR_COLS, 1, bias=False)

    def fit_scalars(self, f: PostFeatures) -> None:
        """Set the standardisation of followers and hand-made features from training features ``f``."""
        mean, std = scalar_standardisation(f)
        self.scalar_mean.copy_(torch.from_numpy(mean))
        self.scalar_std.copy_(torch.from_numpy(std))

    def inputs(self, f: PostFeatures, keep: np.ndarray | None = None) -> torch.Tensor:
        """(n, d_in) float32 input on the model's device (see ``model_inputs``)."""
        x = model_inputs(f, self.scalar_mean.cpu().numpy(), self.scalar_std.cpu().numpy(), keep)
        return torch.from_numpy(x).to(self.scalar_mean.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb, scalars = x[:, :-N_SCALAR_COLS], x[:, -N_SCALAR_COLS:]
        deep = self.net(torch.cat([self.embedding_dropout(emb), scalars], dim=1))
        return (deep + self.wide(scalars)).squeeze(-1)

    def predict(self, f: PostFeatures, batch: int = 4096) -> np.ndarray:
        """(n,) float64 predicted z-scores (eval mode, no gradients)."""
        self.eval()
        out = []
        with torch.inference_mode():
            for k in range(0, len(f), batch):
                out.append(self(self.inputs(f.take(np.arange(k, min(k + batch, len(f)))))).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    loss: float
    val_accuracy: float
    seconds: float
    member: int = 0  # which MLP of the ensemble


def split_accounts(accounts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(rest, held) with a seeded ``fraction`` of ``accounts`` held (at least one when any)."""
    ids = sorted(accounts)
    if fraction <= 0 or len(ids) < 2:
        return ids, []
    n = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    order = np.random.default_rng([seed, 7]).permutation(len(ids))
    held = sorted(ids[i] for i in order[:n])
    held_set = set(held)
    return [a for a in ids if a not in held_set], held


def _batch_loss(
    model: EngagementMLP,
    x: torch.Tensor,
    z: torch.Tensor,
    groups: np.ndarray,
    likes: np.ndarray,
    regression_weight: float,
) -> torch.Tensor:
    s = model(x)
    i, j = within_pairs(groups, likes)
    loss = regression_weight * nn.functional.mse_loss(s, z)
    if len(i):
        ti, tj = torch.from_numpy(i).to(s.device), torch.from_numpy(j).to(s.device)
        loss = loss + nn.functional.softplus(-(s[ti] - s[tj])).mean()
    return loss


def train_model(
    data: EngagementData,
    rows: np.ndarray,
    config: EngagementConfig,
    progress: Callable[[EpochLog], None] | None = None,
    device: str = "cpu",
    member: int = 0,
) -> tuple[EngagementMLP, list[EpochLog]]:
    """Train on the posts at ``rows`` (whole accounts); the best epoch on a validation split of
    those accounts is kept. Seeded: the same data and config give the same weights on CPU."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    accounts = sorted({data.account_ids[g] for g in np.unique(data.groups[rows])})
    fit_acc, val_acc = split_accounts(accounts, config.val_fraction, config.seed)
    fit_rows, val_rows = data.accounts_rows(fit_acc), data.accounts_rows(val_acc)
    model = EngagementMLP(data.features.image.shape[1], data.features.text.shape[1], config.hidden, config.dropout)
    model.fit_scalars(data.features.take(fit_rows))
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    fit_groups = np.unique(data.groups[fit_rows])
    # small corpora still get MIN_STEPS optimiser steps an epoch
    batch = max(1, min(config.batch_accounts, -(-len(fit_groups) // MIN_STEPS)))
    best, best_state, logs = -1.0, None, []
    for epoch in range(config.epochs):
        t0, total, model = time.perf_counter(), 0.0, model.train()
        perm = rng.permutation(fit_groups)
        for k in range(0, len(perm), batch):
            b = np.flatnonzero(np.isin(data.groups, perm[k : k + batch]))
            z = torch.from_numpy(data.z[b].astype(np.float32)).to(device)
            keep = rng.random((len(b), PARTS)) >= config.modality_dropout
            loss = _batch_loss(
                model,
                model.inputs(data.features.take(b), keep),
                z,
                data.groups[b],
                data.likes[b],
                config.regression_weight,
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        acc = evaluate_rows(model, data, val_rows)[0] if len(val_rows) else float("nan")
        log = EpochLog(epoch, total / max(len(fit_rows), 1), acc, time.perf_counter() - t0, member)
        logs.append(log)
        if progress:
            progress(log)
        if not len(val_rows) or not np.isfinite(acc) or acc > best:
            best = acc if np.isfinite(acc) else best
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), logs


def evaluate_rows(model: EngagementMLP, data: EngagementData, rows: np.ndarray) -> tuple[float, int]:
    """Pairwise accuracy (and number of pairs) of ``model`` on the posts at ``rows``."""
    pred = model.predict(data.features.take(rows))
    return pairwise_accuracy(pred, data.likes[rows], data.groups[rows])
