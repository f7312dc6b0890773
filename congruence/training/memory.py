"""The head's partner memory (issue 36): what it holds, and its weight learned on training brands.

``CongruenceHead.memory_score`` scores a candidate by the partners of the training brands that
post most like the brand being ranked (docs/ranking.md). ``attach`` fills it after training:

- the memory holds every training brand with a partner: its post projections through the
  brand tower and its partners' pooled vectors through the influencer tower, but never an
  influencer also paired with a brand outside training (a held-out brand's partner);
- its weight is learned on training brands the scoring head never saw: a seeded quarter of
  them is held back, a head trained as this one on the other three quarters scores the
  quarter's candidate lists with a memory of those three quarters, and the weight is the one
  of ``WEIGHTS`` that ranks the quarter's partners best (0 when the memory does not help). The head put
  in service still trains on every training brand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from congruence.store.postsets import PostSets
from congruence.training.evaluate import head_scorer
from congruence.training.model import CongruenceHead
from congruence.training.ranking_metrics import auc
from congruence.training.sets import pad_posts

logger = logging.getLogger(__name__)

FIT_FRACTION = 0.25  # of the training brands with a partner, to learn the weight on
MIN_BRANDS = 2  # fewer brands on either side of that split: no memory term
WEIGHTS = (0.0, *(0.5 * 2.0**k for k in range(9)))  # 0, 0.5 ... 128: the head's own mix is about 10


def set_from(
    model: CongruenceHead, postsets: PostSets, brand_rows: np.ndarray, partners: Sequence[np.ndarray], weight: float
) -> None:
    """Fill ``model``'s memory with ``brand_rows`` (each with its partner rows) at ``weight``."""
    keep = [i for i, p in enumerate(partners) if len(p)]
    if not keep:
        d = model.config.d_model
        empty, none = torch.zeros(0, d), torch.zeros(0, dtype=torch.long)
        model.set_memory(empty, none, empty, none, 0.0)
        return
    brands = postsets.subset([int(brand_rows[i]) for i in keep])
    infl = postsets.subset([int(r) for i in keep for r in partners[i]])
    posts = torch.from_numpy(model.project_posts(brands))
    post_owner = torch.from_numpy(np.repeat(np.arange(len(keep)), np.diff(brands.offsets)))
    pooled = torch.from_numpy(model.encode_accounts(infl))
    partner_owner = torch.from_numpy(np.repeat(np.arange(len(keep)), [len(partners[i]) for i in keep]))
    model.set_memory(posts, post_owner, pooled, partner_owner, weight)


@torch.no_grad()
def _scores(
    model: CongruenceHead,
    postsets: PostSets,
    brand_rows: np.ndarray,
    cand_rows: np.ndarray,
    brand_chunk: int = 8,
    cand_chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """((B, C) the head's score without its memory, (B, C) the memory's score), in chunks of
    brands and candidates so that memory stays bounded whatever the pool."""
    weight = model.mem_weight.clone()
    model.mem_weight.zero_()
    try:
        base = head_scorer(model)(postsets, brand_rows, cand_rows)
    finally:
        model.mem_weight.copy_(weight)
    brands = postsets.subset([int(r) for r in brand_rows])
    proj = torch.from_numpy(model.project_posts(brands)).to(model.device)
    memory = np.zeros((brand_rows.size, cand_rows.size))
    for c in range(0, cand_rows.size, cand_chunk):
        rows = cand_rows[c : c + cand_chunk]
        pooled = torch.from_numpy(model.encode_accounts(postsets.subset([int(r) for r in rows]))).to(model.device)
        for b in range(0, brand_rows.size, brand_chunk):
            e = min(b + brand_chunk, brand_rows.size)
            off = brands.offsets[b : e + 1]
            padded, mask = pad_posts(proj[off[0] : off[-1]], off - off[0])
            memory[b:e, c : c + rows.size] = model.memory_score(padded, mask, pooled).cpu().numpy()
    return np.asarray(base, np.float64), memory


def mean_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over rows (those with a positive and a negative) of ``ranking_metrics.auc``."""
    aucs = [auc(s, y > 0) for s, y in zip(scores, labels, strict=True)]
    known = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(known)) if known else 0.5


def fit_weight(base: np.ndarray, memory: np.ndarray, labels: np.ndarray) -> float:
    """The weight of ``WEIGHTS`` whose ``base + w * memory`` ranks the held-back brands' partners
    best (mean AUC; the smallest weight among ties). AUC, not the training loss: the held-back
    brands find fewer look-alikes in a memory of three quarters of the brands than served
    brands find in the whole memory, and a ListNet loss punishes those few confident misses
    so hard that it chose 4 where held-out brands gained up to 40 (docs/ranking.md)."""
    aucs = [round(mean_auc(base + w * memory, labels), 4) for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmax(aucs))])


def attach(
    model: CongruenceHead,
    postsets: PostSets,
    brand_rows: np.ndarray,
    positives: Sequence[np.ndarray],
    candidate_rows: np.ndarray,
    paired_elsewhere: np.ndarray,
    train_on: Callable[[Sequence[str]], CongruenceHead],
    seed: int,
) -> float:
    """Learn the memory's weight (see the module) and fill ``model``'s memory with every brand of
    ``brand_rows``; returns the weight. ``train_on(brand ids)`` trains a head as ``model`` was,
    on those brands only, with no memory of its own. ``candidate_rows``: the training
    influencers (the lists the weight is fitted on). ``paired_elsewhere``: influencer rows
    paired with a brand outside ``brand_rows`` (held-out or reserved brands): never in the
    memory, or a held-out brand's partner would be scored by its cosine to itself.

    The lists the weight is fitted on hold every training influencer, and a held-back brand's
    partner may be in the helper's memory as another brand's partner: there the memory finds
    it by identity, where a served brand's memory finds a creator who looks like it. Leaving
    such partners out of the helper's memory measured worse: on the fine photo corpus a
    vertical has one training creator a class, so the memory then had nothing left to find,
    and the weight fell from 8 to 4 (0 on tests/training/test_towers.py)."""
    n = brand_rows.size
    n_fit = int(round(FIT_FRACTION * n))
    if n_fit < MIN_BRANDS or n - n_fit < MIN_BRANDS:
        logger.info("partner memory: %d training brands, too few to learn its weight; no memory term", n)
        set_from(model, postsets, brand_rows[:0], [], 0.0)
        return 0.0
    kept = [np.setdiff1d(p, paired_elsewhere) for p in positives]
    order = np.random.default_rng(seed).permutation(n)
    fit, rest = np.sort(order[:n_fit]), np.sort(order[n_fit:])
    helper = train_on([postsets.account_ids[int(brand_rows[i])] for i in rest])
    set_from(helper, postsets, brand_rows[rest], [kept[i] for i in rest], 0.0)
    base, memory = _scores(helper, postsets, brand_rows[fit], candidate_rows)
    labels = np.stack([np.isin(candidate_rows, positives[i]) for i in fit]).astype(np.float64)
    has = labels.sum(axis=1) > 0
    weight = fit_weight(base[has], memory[has], labels[has]) if has.any() else 0.0
    set_from(model, postsets, brand_rows, kept, weight)
    logger.info("partner memory: %d brands, weight %g (learned on %d held-back brands)", n, weight, n_fit)
    return weight
