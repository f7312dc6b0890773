"""Tiny synthetic data with a planted signal: a brand and its matches share a direction."""

from __future__ import annotations

import numpy as np
import pytest

from congruence.core.vectors import l2_normalize
from congruence.indexer.postsets import PostSets

D_IMAGE, D_TEXT = 8, 4
N_BRANDS, N_CATEGORIES, POSITIVES_PER_BRAND, N_UNPAIRED = 6, 4, 4, 6


def _posts(rng: np.random.Generator, direction: np.ndarray, n: int, noise: float) -> np.ndarray:
    raw = direction[None, :] + noise * rng.standard_normal((n, D_IMAGE + D_TEXT))
    return np.hstack([l2_normalize(raw[:, :D_IMAGE]), l2_normalize(raw[:, D_IMAGE:])])


def make_postsets(seed: int = 0, noise: float = 0.6) -> tuple[PostSets, list[tuple[str, str]]]:
    """6 brands, 30 influencers (24 paired, 6 unpaired), 4 categories, 1..6 posts each."""
    rng = np.random.default_rng(seed)
    ids, kinds, cats, feats, pairs = [], [], [], [], []

    def add(account_id: str, kind: str, category: str, direction: np.ndarray) -> None:
        ids.append(account_id)
        kinds.append(kind)
        cats.append(category)
        feats.append(_posts(rng, direction, int(rng.integers(1, 7)), noise).astype(np.float32))

    for b in range(N_BRANDS):
        direction = rng.standard_normal(D_IMAGE + D_TEXT)
        category = f"c{b % N_CATEGORIES}"
        add(f"b{b}", "brand", category, direction)
        for j in range(POSITIVES_PER_BRAND):
            add(f"i{b}_{j}", "influencer", category, direction)
            pairs.append((f"b{b}", f"i{b}_{j}"))
    for u in range(N_UNPAIRED):
        add(f"u{u}", "influencer", "" if u == 0 else f"c{u % N_CATEGORIES}", rng.standard_normal(D_IMAGE + D_TEXT))
    offsets = np.concatenate([[0], np.cumsum([f.shape[0] for f in feats])]).astype(np.int64)
    postsets = PostSets(
        account_ids=ids,
        features=np.concatenate(feats),
        offsets=offsets,
        post_ids=[f"p{k}" for k in range(int(offsets[-1]))],
        kinds=kinds,
        categories=cats,
        followers=np.full(len(ids), -1, dtype=np.int64),
        d_image=D_IMAGE,
        d_text=D_TEXT,
    )
    return postsets, pairs


@pytest.fixture(scope="session")
def synthetic() -> tuple[PostSets, list[tuple[str, str]]]:
    return make_postsets()
