"""List-wise learning-to-rank losses and the auxiliary category loss.

All ranking losses take ``scores`` and ``labels`` of shape (B, L) (B candidate lists of
L items) and a boolean ``mask`` (B, L) that is False for padding. Rows without any
valid item (or, for ListNet, without any positive label mass) are left out of the
batch mean; a batch with no usable row gives a zero loss that still has a graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_CATEGORY = -1


def _check(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores: expected ndim to be 2, got {scores.ndim}")
    if labels.shape != scores.shape or mask.shape != scores.shape:
        raise ValueError(
            f"scores, labels and mask: expected one shape, got "
            f"{tuple(scores.shape)}, {tuple(labels.shape)}, {tuple(mask.shape)}"
        )


def _very_negative(scores: torch.Tensor) -> float:
    # finite, so that masked entries never turn into inf - inf = nan in a gradient
    return torch.finfo(scores.dtype).min / 4


def _row_mean(per_row: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    if not bool(keep.any()):
        return per_row.sum() * 0.0
    return per_row[keep].mean()


def listnet_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ListNet (top-one) loss: cross-entropy between label and score distributions.

    Per row, the target is ``labels`` (non-negative) normalised to sum 1 over the valid
    items; the prediction is the softmax of ``scores`` over the valid items. Returns the
    mean over rows of ``-sum(p_label * log_softmax(scores))``.
    """
    _check(scores, labels, mask)
    mask = mask.bool()
    labels = torch.where(mask, labels.to(scores.dtype).clamp_min(0.0), 0.0)
    total = labels.sum(dim=1, keepdim=True)
    target = labels / total.clamp_min(torch.finfo(scores.dtype).tiny)
    logp = torch.log_softmax(scores.masked_fill(~mask, _very_negative(scores)), dim=1)
    per_row = -(target * torch.where(mask, logp, 0.0)).sum(dim=1)
    return _row_mean(per_row, total.squeeze(1) > 0)


def listmle_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ListMLE loss: negative Plackett-Luce log-likelihood of the label order.

    The target permutation sorts the valid items by ``labels`` descending; ties keep
    their position in the list (a stable sort), so the loss is deterministic. Per row,
    ``-sum_i (s_pi(i) - logsumexp(s_pi(i..n)))`` over the n valid items; batch mean.
    """
    _check(scores, labels, mask)
    mask = mask.bool()
    neg = _very_negative(scores)
    # padding sorts last, and its scores add nothing to any logsumexp
    keys = torch.where(mask, labels.to(scores.dtype), float("-inf"))
    order = torch.sort(keys, dim=1, descending=True, stable=True).indices
    s = torch.gather(scores.masked_fill(~mask, neg), 1, order)
    valid = torch.gather(mask, 1, order)
    tail_lse = torch.logcumsumexp(s.flip(1), dim=1).flip(1)
    per_row = -torch.where(valid, s - tail_lse, 0.0).sum(dim=1)
    return _row_mean(per_row, valid.any(dim=1))


def category_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of category ``logits`` (N, K) against ``targets`` (N,).

    Targets equal to ``IGNORE_CATEGORY`` (-1, unknown category) are left out; with no
    known target the loss is zero.
    """
    known = targets != IGNORE_CATEGORY
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], targets[known].long())


def geometry_loss(raw: torch.Tensor, projected: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """How far the projection moved each post's neighbours in the frozen features (issue 36).

    raw (N, d_in) frozen features and projected (N, d) their L2-normalised projections, of the
    same N posts. Per post, the softmax over the other posts of their cosine at ``temperature``
    is taken in both spaces; the loss is the mean KL divergence of the projected softmax from
    the raw one. Zero when the projection keeps every post's neighbours as the raw features
    rank and weigh them: a head trained with it keeps what pooled cosine sees (which posts
    show the same class) while the ranking loss moves the rest.
    """
    n = raw.shape[0]
    if projected.shape[0] != n or n < 2:
        if projected.shape[0] != n:
            raise ValueError(f"raw and projected: expected one row count, got {n} and {projected.shape[0]}")
        return projected.sum() * 0.0
    self_pairs = torch.eye(n, dtype=torch.bool, device=raw.device)
    r = F.normalize(raw.float(), dim=-1)
    target = F.log_softmax((r @ r.T).masked_fill(self_pairs, -1e4) / temperature, dim=-1)
    pred = F.log_softmax((projected @ projected.T).masked_fill(self_pairs, -1e4) / temperature, dim=-1)
    return F.kl_div(pred, target, log_target=True, reduction="batchmean")
