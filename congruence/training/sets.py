"""Padding of variable-size post sets into dense (A, P, d) tensors with a mask.

Pooling and the set-to-set score work on padded tensors; padded rows are zeros and
their mask entries False, so a padded post never contributes to a sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def as_float_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``x`` as a float32 tensor (shares memory with a float32 array or tensor)."""
    return x.float() if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def pad_index(offsets: np.ndarray) -> np.ndarray:
    """(A, P) int64 post-row indices of each account, -1 for padding; P >= 1."""
    offs = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offs)
    width = max(1, int(counts.max()) if counts.size else 1)
    cols = np.arange(width, dtype=np.int64)
    index = offs[:-1, None] + cols[None, :]
    return np.where(cols[None, :] < counts[:, None], index, -1)


def pad_posts(x: torch.Tensor, offsets: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` (n_posts, d), grouped CSR-style by ``offsets``, as (A, P, d) + mask (A, P)."""
    offs = torch.as_tensor(offsets).to(device=x.device, dtype=torch.long)
    counts = offs[1:] - offs[:-1]
    n_acc = counts.numel()
    width = max(1, int(counts.max().item()) if n_acc else 1)
    account = torch.repeat_interleave(torch.arange(n_acc, device=x.device), counts)
    position = torch.arange(x.shape[0], device=x.device) - offs[account]
    padded = x.new_zeros((n_acc, width, x.shape[-1]))
    mask = torch.zeros((n_acc, width), dtype=torch.bool, device=x.device)
    padded[account, position] = x
    mask[account, position] = True
    return padded, mask


def pad_sets(sets: Sequence[np.ndarray | torch.Tensor], d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of (n_i, d) arrays as a float32 (C, P, d) tensor + (C, P) mask."""
    parts = [as_float_tensor(s) for s in sets]
    for i, part in enumerate(parts):
        if part.ndim != 2 or part.shape[1] != d:
            raise ValueError(f"sets[{i}]: expected shape (n, {d}), got {tuple(part.shape)}")
    counts = [p.shape[0] for p in parts]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = torch.cat(parts) if parts else torch.zeros((0, d))
    return pad_posts(flat, offsets)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` where masked entries get weight 0; an all-masked slice gives 0s."""
    very_negative = torch.finfo(logits.dtype).min / 4
    weights = torch.softmax(logits.masked_fill(~mask, very_negative), dim=dim)
    return weights * mask.to(weights.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean over ``dim`` of the unmasked entries of ``x``; 0 where none is unmasked."""
    m = mask.to(x.dtype)
    return (x * m).sum(dim=dim) / m.sum(dim=dim).clamp_min(1.0)
