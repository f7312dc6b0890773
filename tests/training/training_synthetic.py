"""Tiny synthetic data with a planted signal.

A brand and its matched influencers share a hidden direction in the first ``D_SIGNAL``
feature dimensions; every account also has its own random "nuisance" offset in the
other dimensions, which raw cosine cannot tell from signal but a trained head can learn
to ignore.
"""

from __future__ import annotations

import numpy as np

from congruence.core.vectors import l2_normalize
from congruence.store.postsets import PostSets

D_IMAGE, D_TEXT, D_SIGNAL = 8, 4, 4
N_BRANDS, N_CATEGORIES, POSITIVES_PER_BRAND, N_UNPAIRED = 16, 4, 3, 6
TEST_BRANDS = ("b13", "b14", "b15")
TRAIN_BRANDS = tuple(f"b{b}" for b in range(N_BRANDS - len(TEST_BRANDS)))


def make_postsets(seed: int = 0, nuisance: float = 0.7, noise: float = 0.5) -> tuple[PostSets, list[tuple[str, str]]]:
    """16 brands, 54 influencers (48 paired, 6 unpaired), 4 categories, 1..6 posts each."""
    rng = np.random.default_rng(seed)
    d = D_IMAGE + D_TEXT
    ids, kinds, cats, feats, pairs = [], [], [], [], []

    def add(account_id: str, kind: str, category: str, direction: np.ndarray) -> None:
        n = int(rng.integers(1, 7))
        raw = noise * rng.standard_normal((n, d))
        raw[:, :D_SIGNAL] += direction
        raw[:, D_SIGNAL:] += nuisance * rng.standard_normal(d - D_SIGNAL)
        ids.append(account_id)
        kinds.append(kind)
        cats.append(category)
        feats.append(np.hstack([l2_normalize(raw[:, :D_IMAGE]), l2_normalize(raw[:, D_IMAGE:])]))

    for b in range(N_BRANDS):
        direction = rng.standard_normal(D_SIGNAL)
        category = f"c{b % N_CATEGORIES}"
        add(f"b{b}", "brand", category, direction)
        for j in range(POSITIVES_PER_BRAND):
            add(f"i{b}_{j}", "influencer", category, direction)
            pairs.append((f"b{b}", f"i{b}_{j}"))
    for u in range(N_UNPAIRED):
        add(f"u{u}", "influencer", "" if u == 0 else f"c{u % N_CATEGORIES}", rng.standard_normal(D_SIGNAL))
    offsets = np.concatenate([[0], np.cumsum([f.shape[0] for f in feats])]).astype(np.int64)
    postsets = PostSets(
        account_ids=ids,
        features=np.concatenate(feats).astype(np.float32),
        offsets=offsets,
        post_ids=[f"p{k}" for k in range(int(offsets[-1]))],
        kinds=kinds,
        categories=cats,
        followers=np.full(len(ids), -1, dtype=np.int64),
        d_image=D_IMAGE,
        d_text=D_TEXT,
    )
    return postsets, pairs
