"""The head's rerank for many brands at once: one forward pass scores several candidate lists.

``CongruenceHead.score_candidates`` scores one brand against its candidates; a bulk job
(export) has thousands of brands, each with its own list. ``score_lists`` packs the lists
of several brands into one (G, C, P, d) tensor, G brands with up to C candidates of up to P
posts (zero-padded, masked), and runs ``CongruenceHead.score`` on it once per group: on a
CPU it saves the per-call overhead, on a GPU it turns thousands of small kernel launches
into a few large ones. A group holds as many brands as fit ``budget`` floats of candidate
vectors, so memory stays bounded whatever the chunk size: on a CPU the forward pass is
compute-bound, and groups of 1 to 12 brands (200 candidates of up to 12 posts, 256-d, one
thread) measured the same within noise, 2.3-3.5 ms a brand, while 24 brands a pass cost
5 ms a brand (the tensors leave the cache); so CPU groups stay small (~3 brands), GPU
groups large.

The scores are the per-brand ones up to float rounding: padding is masked out exactly
(weight 0), but a batched matrix product may sum in another order (differences ~1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from congruence.training.model import CongruenceHead
from congruence.training.sets import as_float_tensor

# floats of candidate vectors per forward pass: on a CPU 2M (8 MB), ~3 brands of 200
# candidates x 12 posts x 256-d (see above); on a GPU 64M (256 MB), ~100 brands
BUDGET = 1 << 21
BUDGET_GPU = 1 << 26
Gather = Callable[[np.ndarray], tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]]


def groups(sizes: Sequence[int], width: int, dim: int, budget: int = BUDGET) -> list[list[int]]:
    """Consecutive brands (indices into ``sizes``) packed so each group's padded candidate
    tensor, len(group) x max size x ``width`` posts x ``dim``, holds at most ``budget``
    floats (a brand alone may exceed it)."""
    out: list[list[int]] = []
    cur: list[int] = []
    widest = 0
    for i, n in enumerate(sizes):
        w = max(widest, n)
        if cur and (len(cur) + 1) * w * width * dim > budget:
            out.append(cur)
            cur, w = [], n
        cur.append(i)
        widest = w
    if cur:
        out.append(cur)
    return out


@torch.no_grad()
def score_lists(
    head: CongruenceHead,
    brand_posts: Sequence[np.ndarray],
    candidates: Sequence[np.ndarray],
    gather: Gather,
    width: int,
    budget: int | None = None,
) -> tuple[list[np.ndarray], int]:
    """(scores of each brand's candidates, float32, in their order; forward passes run).

    brand_posts[i]: (Pb, d) per-post vectors of brand i; candidates[i]: the keys of its
    candidates (at least one, each with per-post vectors); gather(keys) -> ((n, P, d)
    zero-padded vectors, (n, P) mask) of those keys, P <= ``width`` (the largest post
    count a candidate may have; it sizes the groups). budget: floats of candidate vectors
    a pass (default ``BUDGET``, or ``BUDGET_GPU`` for a head on a GPU).
    """
    head.eval()
    if budget is None:
        budget = BUDGET_GPU if head.device.type == "cuda" else BUDGET
    d = head.config.d_model
    sizes = [len(c) for c in candidates]
    scores: list[np.ndarray] = [np.zeros(0, np.float32)] * len(sizes)
    passes = 0
    for group in groups(sizes, max(width, 1), d, budget):
        g, c = len(group), max(sizes[i] for i in group)
        cands, cmask = gather(np.concatenate([np.asarray(candidates[i]) for i in group]))
        cands, cmask = as_float_tensor(cands), torch.as_tensor(cmask, dtype=torch.bool)
        p = cands.shape[1]
        if all(sizes[i] == c for i in group):  # lists of one length (the usual case): already packed
            packed, pmask = cands, cmask
        else:
            slots = torch.from_numpy(np.concatenate([j * c + np.arange(sizes[i]) for j, i in enumerate(group)]))
            packed = torch.zeros((g * c, p, d), dtype=torch.float32)
            packed[slots] = cands
            pmask = torch.zeros((g * c, p), dtype=torch.bool)
            pmask[slots] = cmask
        pb = max(len(brand_posts[i]) for i in group)
        brands = torch.zeros((g, pb, d), dtype=torch.float32)
        bmask = torch.zeros((g, pb), dtype=torch.bool)
        for j, i in enumerate(group):
            n = len(brand_posts[i])
            brands[j, :n] = as_float_tensor(brand_posts[i])
            bmask[j, :n] = True
        dev = head.device
        out = head.score(
            brands.to(dev), bmask.to(dev), packed.reshape(g, c, p, d).to(dev), pmask.reshape(g, c, p).to(dev)
        )
        result = out.float().cpu().numpy()
        passes += 1
        for j, i in enumerate(group):
            scores[i] = result[j, : sizes[i]]
    return scores, passes
