"""The training loop: list-wise ranking loss per brand + auxiliary category loss.

Each step takes a batch of training brands, samples one candidate list per brand
(positives + negatives), projects only the posts of the accounts in the batch, pools
them, scores every (brand, candidate) pair from their post sets and takes a gradient
step. Deterministic on CPU for a given seed; uses CUDA when asked for or available.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from congruence.core.device import resolve_device
from congruence.core.errors import InvalidInput
from congruence.store.postsets import PostSets
from congruence.training.data import CandidateLists, Pair, RankingData, build_ranking_data, sample_candidate_lists
from congruence.training.losses import category_loss, geometry_loss, listmle_loss, listnet_loss
from congruence.training.memory import attach
from congruence.training.model import CongruenceHead, HeadConfig, brand_accounts
from congruence.training.sets import pad_index

logger = logging.getLogger(__name__)

LOSSES = {"listnet": listnet_loss, "listmle": listmle_loss}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. aux_weight 0 disables the category task (the head then has no classifier).

    max_posts: posts per account seen in one step (a fresh random subset each step, to
        bound the cost of prolific accounts); 0 = all.
    lookalike_fraction: share of each list's negatives drawn from the influencers that look
        most like the brand (pooled raw cosine) but are not its partners: without them a list
        rarely holds the look-alikes a search must learn to put below the partners.
    aux_batch: extra random training influencers per step seen by the category task only,
        so that it learns from the whole pool, not just the few in candidate lists.
    geometry_weight: weight of ``losses.geometry_loss`` on up to ``geometry_posts`` random
        posts of each step's accounts, through the shared projection, added to the ranking
        loss (and reported in it); 0, the default, leaves training as it was before it, draw for
        draw. The projection keeps the frozen features' neighbours, so the head keeps the class
        detail that pooled cosine sees: 3 (chosen on the fine photo kind's validation corpus)
        helps the photo kinds and hurts the real brand-tag benchmarks, cold and warm
        (docs/ranking.md), so it is off unless asked for.
    partner_memory: give the head its partner memory (``training.memory``): a second head
        is trained on three quarters of the training brands to learn the memory's weight. Off
        by default: it gains on the photo kinds only with the geometry loss, and the two
        together hurt the real brand-tag benchmarks (docs/ranking.md).
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_brands: int = 16
    list_size: int = 32
    loss: str = "listnet"
    aux_weight: float = 0.1
    hard_negative_fraction: float = 0.25
    lookalike_fraction: float = 0.25
    max_posts: int = 32
    aux_batch: int = 64
    max_grad_norm: float = 1.0
    geometry_weight: float = 0.0
    geometry_posts: int = 512
    partner_memory: bool = False
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InvalidInput(f"must be listnet or listmle, got {self.loss!r}", field="loss")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidInput(f"must be auto, cpu or cuda, got {self.device!r}", field="device")
        lows = (("epochs", 1), ("batch_brands", 1), ("list_size", 2), ("max_posts", 0), ("aux_batch", 0))
        for name, low in (*lows, ("geometry_posts", 2)):
            if getattr(self, name) < low:
                raise InvalidInput(f"must be at least {low}, got {getattr(self, name)!r}", field=name)
        for name in ("hard_negative_fraction", "lookalike_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInput(f"must be from 0 to 1, got {getattr(self, name)!r}", field=name)
        for name in ("aux_weight", "geometry_weight"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"must be at least 0, got {getattr(self, name)!r}", field=name)
        if self.lr <= 0:
            raise InvalidInput(f"must be positive, got {self.lr!r}", field="lr")


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float
    rank_loss: float
    aux_loss: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The trained head (eval mode, on the training device) and one EpochStats per epoch."""

    model: CongruenceHead
    history: tuple[EpochStats, ...]


@contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, deterministic torch inside; the caller's RNG and flags are restored after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@dataclass(frozen=True)
class _Batchable:
    """Everything a step needs, built once: features on the device, a padded post index."""

    features: torch.Tensor
    post_index: np.ndarray
    category_ids: torch.Tensor
    aux_pool: np.ndarray
    is_brand: np.ndarray  # (n_accounts,) bool: projected and pooled by the brand tower


def _head_config(postsets: PostSets, head_config: HeadConfig | None, n_categories: int) -> HeadConfig:
    if head_config is None:
        return HeadConfig(d_image=postsets.d_image, d_text=postsets.d_text, n_categories=n_categories)
    if (head_config.d_image, head_config.d_text) != (postsets.d_image, postsets.d_text):
        raise ValueError(
            f"head_config: d_image={head_config.d_image}, d_text={head_config.d_text} do not match "
            f"postsets ({postsets.d_image}, {postsets.d_text})"
        )
    return replace(head_config, n_categories=n_categories)


def _sample_posts(index: np.ndarray, max_posts: int, rng: np.random.Generator) -> np.ndarray:
    """A random subset of at most ``max_posts`` posts per row of ``index`` (-1 = none), trimmed."""
    if max_posts and index.shape[1] > max_posts:
        keys = rng.random(index.shape)
        keys[index < 0] = 2.0
        index = np.take_along_axis(index, np.argsort(keys, axis=1, kind="stable")[:, :max_posts], axis=1)
    width = max(1, int((index >= 0).sum(axis=1).max()))
    return np.ascontiguousarray(np.sort(index, axis=1)[:, ::-1][:, :width])


def _aux_rows(tensors: _Batchable, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` random rows of the training pool's influencers with a known category."""
    pool = tensors.aux_pool
    if n <= 0 or pool.size == 0:
        return pool[:0]
    return rng.choice(pool, size=min(n, pool.size), replace=False)


def _geometry(
    model: CongruenceHead, tensors: _Batchable, index: np.ndarray, config: TrainConfig, rng: np.random.Generator
) -> torch.Tensor:
    """``geometry_loss`` of up to ``config.geometry_posts`` random posts of ``index`` (A, P; -1 none)."""
    rows = index[index >= 0]
    if rows.size > config.geometry_posts:
        rows = np.sort(rng.choice(rows, config.geometry_posts, replace=False))
    raw = tensors.features[torch.from_numpy(rows).to(tensors.features.device)]
    return geometry_loss(raw, model.project(raw))


def _step_loss(
    model: CongruenceHead,
    tensors: _Batchable,
    brand_rows: np.ndarray,
    lists: CandidateLists,
    config: TrainConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranking loss, plus ``geometry_weight`` x the geometry loss when set; category loss)
    of one batch of candidate lists."""
    device = tensors.features.device
    extra = _aux_rows(tensors, config.aux_batch, rng) if model.classifier is not None else brand_rows[:0]
    listed = np.concatenate([brand_rows, lists.rows[lists.mask]])
    accounts, inverse = np.unique(np.concatenate([listed, extra]), return_inverse=True)
    index = torch.from_numpy(_sample_posts(tensors.post_index[accounts], config.max_posts, rng)).to(device)
    padded, valid, pooled = _encode(model, tensors, index, tensors.is_brand[accounts])
    b = torch.from_numpy(inverse[: brand_rows.size]).to(device)
    c_np = np.zeros(lists.rows.shape, dtype=np.int64)
    c_np[lists.mask] = inverse[brand_rows.size : listed.size]
    c = torch.from_numpy(c_np).to(device)
    scores = model.score_sets(padded[b], valid[b], pooled[b], padded[c], valid[c], pooled[c])
    labels = torch.from_numpy(lists.labels).to(device)
    rank = LOSSES[config.loss](scores, labels, torch.from_numpy(lists.mask).to(device))
    if config.geometry_weight > 0:
        rank = rank + config.geometry_weight * _geometry(model, tensors, tensors.post_index[accounts], config, rng)
    if model.classifier is None:
        return rank, rank.new_zeros(())
    targets = tensors.category_ids[torch.from_numpy(accounts).to(device)]
    return rank, category_loss(model.classify(pooled), targets)


def _encode(
    model: CongruenceHead, tensors: _Batchable, index: torch.Tensor, brand: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(padded (A, P, d) projections, (A, P) mask, (A, d) pooled) of the accounts whose post
    rows are ``index`` (A, P; -1 = none); accounts flagged ``brand`` through the brand tower."""
    valid = index >= 0
    brand_t = torch.from_numpy(brand).to(index.device)
    projected = model.project(tensors.features[index[valid]], brand_t[:, None].expand_as(valid)[valid])
    padded = projected.new_zeros((*index.shape, projected.shape[-1]))
    padded[valid] = projected
    pooled = model.pool_padded(padded, valid)
    if model.brand_query is not None and brand.any():
        rows = torch.nonzero(brand_t, as_tuple=True)[0]
        pooled = pooled.index_put((rows,), model.pool_padded(padded[rows], valid[rows], brand=True))
    return padded, valid, pooled


def _run_epoch(
    model: CongruenceHead,
    optimizer: torch.optim.Optimizer,
    data: RankingData,
    tensors: _Batchable,
    config: TrainConfig,
    rng: np.random.Generator,
    epoch: int,
) -> EpochStats:
    start = time.perf_counter()
    model.train()
    order = rng.permutation(data.brand_rows.size)
    sums = np.zeros(3)
    for s in range(0, order.size, config.batch_brands):
        batch = order[s : s + config.batch_brands]
        lists = sample_candidate_lists(
            data, batch, config.list_size, config.hard_negative_fraction, rng, config.lookalike_fraction
        )
        rank, aux = _step_loss(model, tensors, data.brand_rows[batch], lists, config, rng)
        loss = rank + config.aux_weight * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        sums += batch.size * np.array([loss.item(), rank.item(), aux.item()])
    mean = sums / order.size
    return EpochStats(epoch, float(mean[0]), float(mean[1]), float(mean[2]), time.perf_counter() - start)


def _paired_elsewhere(postsets: PostSets, pairs: Sequence[Pair], brands: Collection[str]) -> np.ndarray:
    """Rows of the influencers paired with some brand not in ``brands``."""
    index = postsets.index_of()
    return np.unique(np.fromiter((index[i] for b, i in pairs if b not in brands and i in index), np.int64))


def train(
    postsets: PostSets,
    pairs: Sequence[Pair],
    config: TrainConfig = TrainConfig(),
    head_config: HeadConfig | None = None,
    progress: Callable[[EpochStats], None] | None = None,
    train_brands: Collection[str] | None = None,
    exclude_influencers: Collection[str] = (),
) -> TrainResult:
    """Train a ``CongruenceHead`` on the (brand_id, influencer_id) positive ``pairs``.

    train_brands: the brands to learn from (default: every brand in ``pairs``). Pairs of
        other brands only mark their influencers as held out: an influencer paired only
        with non-training brands is never used, not even as a negative.
    head_config: its d_image/d_text must match ``postsets``; n_categories is set from the
        category vocabulary of ``postsets`` (0 when aux_weight is 0).
    progress: called with each epoch's EpochStats.
    exclude_influencers: influencers never used in training (see ``build_ranking_data``).
    """
    brands = {b for b, _ in pairs} if train_brands is None else set(train_brands)
    data = build_ranking_data(postsets, pairs, brands, exclude_influencers)
    if data.brand_rows.size == 0:
        raise ValueError("pairs: no training brand has a positive influencer")
    categories = data.categories if config.aux_weight > 0 else ()
    device = resolve_device(config.device)
    with _deterministic(config.seed):
        model = CongruenceHead(_head_config(postsets, head_config, len(categories)), categories).to(device)
        model.train_brands = tuple(sorted(postsets.account_ids[int(r)] for r in data.brand_rows))
        tensors = _Batchable(
            features=torch.from_numpy(np.asarray(postsets.features, np.float32)).to(device),
            post_index=pad_index(postsets.offsets),
            category_ids=torch.from_numpy(data.category_ids).to(device),
            aux_pool=data.influencer_rows[data.category_ids[data.influencer_rows] >= 0],
            is_brand=brand_accounts(postsets),
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        rng = np.random.default_rng(config.seed)
        history: list[EpochStats] = []
        for epoch in range(config.epochs):
            stats = _run_epoch(model, optimizer, data, tensors, config, rng, epoch)
            history.append(stats)
            logger.info(
                "epoch %d: loss %.4f (rank %.4f, aux %.4f) in %.1fs",
                epoch,
                stats.loss,
                stats.rank_loss,
                stats.aux_loss,
                stats.seconds,
            )
            if progress is not None:
                progress(stats)
    model.eval()
    if config.partner_memory:

        def train_on(ids: Sequence[str]) -> CongruenceHead:
            plain = replace(config, partner_memory=False)
            return train(
                postsets, pairs, plain, model.config, train_brands=ids, exclude_influencers=exclude_influencers
            ).model

        elsewhere = _paired_elsewhere(postsets, pairs, {postsets.account_ids[int(r)] for r in data.brand_rows})
        attach(model, postsets, data.brand_rows, data.positives, data.influencer_rows, elsewhere, train_on, config.seed)
    return TrainResult(model=model, history=tuple(history))
