"""The store ``bench.match_e2e`` serves from: a real embedded PostgreSQL with synthetic
accounts, a seeded head in service, and its 256-d space with per-post projections written at
"index time" (as ``bench.export_speed`` does), generated in chunks so 1M influencers fit in memory."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from bench.export_speed import D_HEAD, write_store
from congruence.core.settings import Settings
from congruence.datasets.synthetic import CATEGORY_SHARES, SyntheticDataset

CHUNK = 50_000  # accounts generated (and pooled) at a time


@dataclass(frozen=True)
class E2eConfig:
    sizes: tuple[int, ...]
    brands: int = 200  # query brands, each timed once per path after a warm-up pass
    k: int = 20
    candidates: int = 200
    posts: tuple[int, int] = (4, 12)  # posts per account, as in bench.export_speed
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> E2eConfig:
        return cls((10_000,), brands=50) if quick else cls((100_000, 1_000_000))


def _posts_chunk(
    n: int, cfg: E2eConfig, rng: np.random.Generator, space: SyntheticDataset
) -> tuple[np.ndarray, np.ndarray]:
    """(counts (n,), per-post vectors (sum(counts), 256) float16, L2-normalised) for n accounts
    whose themes are points of ``space``'s clusters."""
    counts = rng.integers(cfg.posts[0], cfg.posts[1] + 1, n)
    themes = space.sample(n, rng)
    posts = np.repeat(themes, counts, axis=0) + 0.08 * rng.standard_normal((int(counts.sum()), D_HEAD), np.float32)
    posts /= np.linalg.norm(posts, axis=1, keepdims=True)
    return counts, posts.astype(np.float16)


def build_store(settings: Settings, cfg: E2eConfig, n: int) -> dict[str, float]:
    """``bench.export_speed.build_store`` for ``cfg.brands`` brands and ``n`` influencers, in chunks."""
    from congruence.encoders.encoder_set import EncoderSet
    from congruence.store.records import Store
    from congruence.training.deploy import (
        encoder_meta,
        save_checkpoint,
    )
    from congruence.training.model import CongruenceHead, HeadConfig

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    t = time.perf_counter()
    total = cfg.brands + n
    ids = [f"brand_{i:06d}" for i in range(cfg.brands)] + [f"infl_{i:07d}" for i in range(n)]
    shares = np.array(list(CATEGORY_SHARES.values()))
    cats = rng.choice(list(CATEGORY_SHARES), total, p=shares / shares.sum())
    followers = (10 ** rng.uniform(3, 6, total)).astype(np.int64)
    space = SyntheticDataset(D_HEAD, 0, 0, cfg.seed)  # the cluster geometry; points are drawn in chunks
    with Store.open(settings) as store:
        mids = EncoderSet(settings).model_ids(store)
        head = CongruenceHead(HeadConfig(mids.d_image, mids.d_text, d_model=D_HEAD))
        save_checkpoint(settings, head, encoder_meta(mids))
        counts, parts, pooled = [], [], np.empty((total, D_HEAD), np.float32)
        for i in range(0, total, CHUNK):
            c, p = _posts_chunk(min(CHUNK, total - i), cfg, rng, space)
            off = np.concatenate([[0], np.cumsum(c)]).astype(np.int64)
            pooled[i : i + len(c)] = head.pool_projected(p.astype(np.float32), off)
            counts.append(c)
            parts.append(p)
        posts = np.concatenate(parts)
        del parts
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        times = {"generate": time.perf_counter() - t}
        t = time.perf_counter()
        kinds = ["brand"] * cfg.brands + ["influencer"] * n
        write_store(store, head.version, (ids, kinds, list(cats), followers), offsets, posts, pooled)
        times["write_postgres"] = time.perf_counter() - t
    times["posts"] = float(len(posts))
    return times


# -- the serving process ------------------------------------------------------------
