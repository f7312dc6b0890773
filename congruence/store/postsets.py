"""Per-account sets of per-post features: what pooling and the congruence head consume."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PostSets:
    """Posts of many accounts, stored CSR-style.

    account_ids: n_accounts ids, in order.
    features: (n_posts_total, d_image + d_text) float32. Each row is one post: its image
        embedding (L2-normalised, or zeros when the post has no image) followed by its
        text embedding (L2-normalised, or zeros when the caption is empty).
    offsets: (n_accounts + 1,) int64; posts of account i are features[offsets[i]:offsets[i+1]].
    post_ids: n_posts_total post ids, aligned with ``features`` rows.
    kinds: "brand" or "influencer" per account.
    categories: category per account ("" when unknown).
    followers: (n_accounts,) int64, -1 when unknown.
    d_image, d_text: widths of the two parts of a feature row.
    """

    account_ids: list[str]
    features: np.ndarray
    offsets: np.ndarray
    post_ids: list[str]
    kinds: list[str]
    categories: list[str]
    followers: np.ndarray
    d_image: int
    d_text: int

    def __post_init__(self) -> None:
        n = len(self.account_ids)
        if self.offsets.shape != (n + 1,):
            raise ValueError(f"offsets: expected shape ({n + 1},), got {self.offsets.shape}")
        if self.features.ndim != 2 or self.features.shape[1] != self.d_image + self.d_text:
            raise ValueError(f"features: expected (n, {self.d_image + self.d_text}), got {self.features.shape}")
        if int(self.offsets[-1]) != self.features.shape[0] or len(self.post_ids) != self.features.shape[0]:
            raise ValueError("offsets, features and post_ids disagree on the number of posts")

    @property
    def dim(self) -> int:
        return self.d_image + self.d_text

    def __len__(self) -> int:
        return len(self.account_ids)

    def posts_of(self, i: int) -> np.ndarray:
        """(n_posts_i, dim) features of account i."""
        return self.features[self.offsets[i] : self.offsets[i + 1]]

    def index_of(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.account_ids)}

    def subset(self, rows: list[int]) -> PostSets:
        """The accounts at ``rows`` (in that order), with their posts."""
        feats, pids, offs = [], [], [0]
        for i in rows:
            s, e = int(self.offsets[i]), int(self.offsets[i + 1])
            feats.append(self.features[s:e])
            pids.extend(self.post_ids[s:e])
            offs.append(offs[-1] + (e - s))
        features = np.concatenate(feats) if feats else np.zeros((0, self.dim), np.float32)
        return PostSets(
            account_ids=[self.account_ids[i] for i in rows],
            features=features,
            offsets=np.asarray(offs, dtype=np.int64),
            post_ids=pids,
            kinds=[self.kinds[i] for i in rows],
            categories=[self.categories[i] for i in rows],
            followers=self.followers[rows] if rows else np.zeros(0, np.int64),
            d_image=self.d_image,
            d_text=self.d_text,
        )
