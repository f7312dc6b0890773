"""Authenticity signals: engagement that does not look like an ordinary audience's.

Each flag carries the figure that was compared, the threshold it crossed and a sentence with
both. Nothing here estimates a "real audience %": that needs the followers themselves.

- ``comment_like_ratio``: comments / likes over the engagement-rate window (at least 3 posts)
  far outside the range of accounts of the same kind and category: a robust z of
  log10((comments + 1) / (likes + 1)) beyond +-3.5 (median and 1.4826 x MAD over at least 20
  such accounts; fewer: every account of that kind). Too few comments for the likes is the
  mark of bought likes; too many, of comment pods or bots.
- ``like_spike``: a post among the newest N (at least 5 with likes) with 5 x or more the
  median likes of those N.
- ``er_outlier``: the engagement rate a robust z beyond +-3.5 (of log10 ER) from accounts of
  the same kind, category and follower band (fewer than 20 with an ER: the same band, any
  category). Far above suggests engagement groups or bought engagement; far below, bought
  followers.
- ``growth_spike``: a jump in the follower count, from the follower history (``growth``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.indexer.account_metrics.compute import group_median, newest_first, window
from congruence.store.account_metrics import AccountArrays, Flag, PostArrays

Z_MAX = 3.5
SPIKE = 5.0
MIN_PEERS = 20
MIN_RATIO_POSTS = 3
MIN_SPIKE_POSTS = 5
BANDS = (1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000)
BAND_NAMES = ("<1k", "1k-5k", "5k-10k", "10k-50k", "50k-100k", "100k-500k", "500k-1M", "1M+")
SIGNALS = ("comment_like_ratio", "like_spike", "er_outlier", "growth_spike")


def follower_band(followers: np.ndarray) -> np.ndarray:
    """(n,) int band index into BAND_NAMES; -1 when the follower count is unknown or not positive."""
    f = np.asarray(followers, np.float64)
    band = np.searchsorted(np.asarray(BANDS, np.float64), np.nan_to_num(f, nan=0.0), side="right")
    return np.where(f > 0, band, -1)


@dataclass(frozen=True)
class Peers:
    """Per account, NaN/0 without a reference: robust z, the peers' median and scale
    (1.4826 x MAD, in the units of the values), how many peers, and which group (0: the
    first key, 1: the fallback)."""

    z: np.ndarray
    median: np.ndarray
    scale: np.ndarray
    n: np.ndarray
    level: np.ndarray


def codes(*keys: Sequence[object] | np.ndarray) -> np.ndarray:
    joined = ["\x1f".join(map(str, k)) for k in zip(*keys, strict=True)]
    return np.unique(np.asarray(joined, dtype=object), return_inverse=True)[1].astype(np.int64)


def peer_z(
    x: np.ndarray, valid: np.ndarray, keys: Sequence[np.ndarray], floor: float = 0.0, owners: np.ndarray | None = None
) -> Peers:
    """Robust z of ``x`` within each account's peer group: the first key's group when it has
    at least MIN_PEERS valid members and a scale above 0 (1.4826 x MAD, at least ``floor``),
    else the next key's. ``owners``: when the values are not one an account, the account of
    each; members are then counted as distinct accounts (``Peers.n`` too)."""
    n = len(x)
    out = Peers(
        np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, np.int64), np.full(n, -1, np.int64)
    )
    todo = valid.copy()
    for level, group in enumerate(keys):
        g = int(group.max()) + 1 if n else 0
        med, cnt = group_median(group[valid], x[valid], g)
        mad, _ = group_median(group[valid], np.abs(x[valid] - med[group[valid]]), g)
        scale = np.maximum(1.4826 * mad, floor)
        if owners is not None and valid.any():
            cnt = np.bincount(np.unique(np.stack([group[valid], owners[valid]]), axis=1)[0], minlength=g)
        ok = todo & (cnt[group] >= MIN_PEERS) & (scale[group] > 0)
        out.z[ok] = (x[ok] - med[group[ok]]) / scale[group[ok]]
        out.median[ok], out.scale[ok], out.n[ok], out.level[ok] = (
            med[group[ok]],
            scale[group[ok]],
            cnt[group[ok]],
            level,
        )
        todo &= ~ok
    return out


def _window_sums(accounts: AccountArrays, posts: PostArrays, n_last: int) -> tuple[np.ndarray, ...]:
    """(likes sum, comments sum, posts) per account over its engagement-rate window."""
    n = len(accounts.ids)
    o = newest_first(posts)
    acc = posts.account[o]
    known = ~np.isnan(posts.likes[o]) & ~np.isnan(posts.comments[o])
    w = window(acc, known, n_last)
    likes = np.bincount(acc[w], weights=posts.likes[o][w], minlength=n)
    comments = np.bincount(acc[w], weights=posts.comments[o][w], minlength=n)
    return likes, comments, np.bincount(acc[w], minlength=n)


def comment_like_flags(accounts: AccountArrays, posts: PostArrays, n_last: int) -> list[list[Flag]]:
    likes, comments, cnt = _window_sums(accounts, posts, n_last)
    x = np.log10((comments + 1) / (likes + 1))
    kinds, cats = list(accounts.kinds), list(accounts.categories)
    p = peer_z(x, cnt >= MIN_RATIO_POSTS, [codes(kinds, cats), codes(kinds)])
    out: list[list[Flag]] = [[] for _ in accounts.ids]
    for i in np.flatnonzero(np.abs(np.nan_to_num(p.z)) > Z_MAX):
        lo, hi = 10 ** (p.median[i] - Z_MAX * p.scale[i]), 10 ** (p.median[i] + Z_MAX * p.scale[i])
        who = (f"{cats[i]} {kinds[i]}s" if p.level[i] == 0 and cats[i] else f"{kinds[i]}s") + f" (n={p.n[i]})"
        side = "above" if p.z[i] > 0 else "below"
        out[i].append(
            Flag(
                "comment_like_ratio",
                round(float(p.z[i]), 2),
                Z_MAX,
                f"{comments[i]:.0f} comments for {likes[i]:.0f} likes over its newest {cnt[i]} posts: "
                f"a comment-to-like ratio {side} the range of {who}, {lo:.4f}-{hi:.4f} "
                f"(robust z {p.z[i]:+.1f}, threshold +-{Z_MAX})",
            )
        )
    return out


def like_spike_flags(accounts: AccountArrays, posts: PostArrays, n_last: int) -> list[list[Flag]]:
    n = len(accounts.ids)
    o = newest_first(posts)
    acc, likes = posts.account[o], posts.likes[o]
    w = window(acc, ~np.isnan(likes), n_last)
    med, cnt = group_median(acc[w], likes[w], n)
    out: list[list[Flag]] = [[] for _ in accounts.ids]
    idx = np.flatnonzero(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = likes[idx] / med[acc[idx]]
    hit = (cnt[acc[idx]] >= MIN_SPIKE_POSTS) & (med[acc[idx]] > 0) & (ratio >= SPIKE)
    best: dict[int, int] = {}
    for hit_at in np.flatnonzero(hit).tolist():
        a = int(acc[idx[hit_at]])
        if a not in best or ratio[hit_at] > ratio[best[a]]:
            best[a] = hit_at
    for a, j in best.items():
        k = int(o[idx[j]])
        out[a].append(
            Flag(
                "like_spike",
                round(float(ratio[j]), 2),
                SPIKE,
                f"post {posts.ids[k]} has {likes[idx[j]]:.0f} likes, {ratio[j]:.1f}x the median "
                f"({med[a]:.0f}) of its newest {cnt[a]} posts (threshold {SPIKE:.0f}x)",
                posts.ids[k],
            )
        )
    return out


def er_outlier_flags(accounts: AccountArrays, er: np.ndarray) -> list[list[Flag]]:
    band = follower_band(accounts.followers)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(er)
    valid = np.isfinite(x) & (band >= 0)
    kinds, cats = list(accounts.kinds), list(accounts.categories)
    p = peer_z(x, valid, [codes(kinds, cats, band), codes(kinds, band)])
    out: list[list[Flag]] = [[] for _ in accounts.ids]
    for i in np.flatnonzero(np.abs(np.nan_to_num(p.z)) > Z_MAX):
        group = (
            f"{cats[i]} " if p.level[i] == 0 and cats[i] else ""
        ) + f"{kinds[i]}s with {BAND_NAMES[band[i]]} followers"
        out[i].append(
            Flag(
                "er_outlier",
                round(float(p.z[i]), 2),
                Z_MAX,
                f"engagement rate {100 * er[i]:.2f} % against a median of {100 * 10 ** p.median[i]:.2f} % "
                f"for {group} (n={p.n[i]}): robust z {p.z[i]:+.1f}, threshold +-{Z_MAX}",
            )
        )
    return out


def authenticity(accounts: AccountArrays, posts: PostArrays, er: np.ndarray, n_last: int) -> list[list[Flag]]:
    """Every account's flags (aligned with ``accounts``), in SIGNALS order."""
    parts = (
        comment_like_flags(accounts, posts, n_last),
        like_spike_flags(accounts, posts, n_last),
        er_outlier_flags(accounts, er),
    )
    return [a + b + c for a, b, c in zip(*parts, strict=True)]
