"""Per-account engagement figures from arrays of posts: what every discovery tool shows first.

- engagement rate: the median over the account's newest N posts (default 12) with known likes
  and comments of (likes + comments) / followers; unknown without a positive follower count;
- posts per week: over its newest N posts with a time, (posts - 1) / the weeks between the
  first and the last, at least one week (so a burst of posts in a day is not 300 a week);
- sponsored share: the share of paid partnerships among its newest N posts whose status is known;
- sponsored-vs-organic ratio: median engagement (likes + comments) of its sponsored posts over
  that of its organic ones, over all its posts (sponsored posts are rare: a window of N would
  seldom hold both); 2.0 = sponsored posts get twice the engagement. Followers cancel out.

Pure numpy over ``PostArrays`` and ``AccountArrays``; ``signals`` adds the authenticity flags and
``recompute`` reads the arrays from PostgreSQL (``store.account_metrics``) and writes the results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.store.account_metrics import AccountArrays, PostArrays

N_LAST = 12
MAX_N_LAST = 1000
WEEK = 7 * 86400.0


@dataclass(frozen=True)
class Figures:
    """Per account (aligned with ``AccountArrays``), NaN when unknown: er, er_posts (posts the
    median is over), posts_per_week, sponsored_share, sponsored_ratio, sponsored_posts and
    organic_posts (with known engagement, over all posts)."""

    er: np.ndarray
    er_posts: np.ndarray
    posts_per_week: np.ndarray
    sponsored_share: np.ndarray
    sponsored_ratio: np.ndarray
    sponsored_posts: np.ndarray
    organic_posts: np.ndarray


def check_n_last(n: object) -> int:
    """``n``, the posts the engagement rate is over (``er_posts`` to the command line), if valid."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N_LAST:
        raise InvalidInput(
            f"(the posts the engagement rate is over) must be a whole number from 1 to {MAX_N_LAST}, got {n!r}",
            field="er_posts",
        )
    return n


def newest_first(posts: PostArrays) -> np.ndarray:
    """(n,) order of the posts: by account, newest first, those without a time last."""
    key = np.where(np.isnan(posts.ts), np.inf, -posts.ts)
    return np.lexsort((key, posts.account))


def window(account: np.ndarray, eligible: np.ndarray, n_last: int) -> np.ndarray:
    """(n,) bool over posts already in ``newest_first`` order: the first ``n_last`` eligible
    posts of each account."""
    if not len(account):
        return np.zeros(0, bool)
    e = eligible.astype(np.int64)
    c = np.cumsum(e)
    starts = np.r_[0, np.flatnonzero(np.diff(account)) + 1]
    base = np.repeat(c[starts] - e[starts], np.diff(np.r_[starts, len(e)]))
    return eligible & (c - base - 1 < n_last)


def group_median(groups: np.ndarray, values: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """((n_groups,) median of ``values`` per group, NaN for an empty one; (n_groups,) counts)."""
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    med = np.full(n_groups, np.nan)
    if not len(values):
        return med, counts
    o = np.lexsort((values, groups))
    v = values[o]
    start = np.r_[0, np.cumsum(counts)[:-1]]
    has = counts > 0
    lo, hi = start + (counts - 1) // 2, start + counts // 2
    med[has] = (v[lo[has]] + v[hi[has]]) / 2
    return med, counts


def post_rates(accounts: AccountArrays, posts: PostArrays) -> np.ndarray:
    """(n posts,) (likes + comments) / the account's followers; NaN when any is unknown or
    the follower count is not positive."""
    fol = accounts.followers[posts.account] if len(posts.account) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (posts.likes + posts.comments) / fol
    return np.where(fol > 0, rate, np.nan)


def _posts_per_week(acc: np.ndarray, ts: np.ndarray, in_win: np.ndarray, n: int) -> np.ndarray:
    a, t = acc[in_win], ts[in_win]
    cnt = np.bincount(a, minlength=n)
    hi = np.full(n, -np.inf)
    lo = np.full(n, np.inf)
    np.maximum.at(hi, a, t)
    np.minimum.at(lo, a, t)
    with np.errstate(invalid="ignore"):
        weeks = np.maximum((hi - lo) / WEEK, 1.0)
        return np.where(cnt >= 2, (cnt - 1) / weeks, np.nan)


def _sponsored_ratio(
    acc: np.ndarray, engagement: np.ndarray, sponsored: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ok = ~np.isnan(engagement) & (sponsored >= 0)
    sp, org = ok & (sponsored == 1), ok & (sponsored == 0)
    med_sp, n_sp = group_median(acc[sp], engagement[sp], n)
    med_org, n_org = group_median(acc[org], engagement[org], n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((n_sp > 0) & (n_org > 0) & (med_org > 0), med_sp / med_org, np.nan)
    return ratio, n_sp, n_org


def figures(accounts: AccountArrays, posts: PostArrays, n_last: int = N_LAST) -> Figures:
    """The figures of every account (see the module doc)."""
    n = len(accounts.ids)
    o = newest_first(posts)
    acc, ts = posts.account[o], posts.ts[o]
    rate = post_rates(accounts, posts)[o]
    in_er = window(acc, ~np.isnan(rate), n_last)
    er, er_posts = group_median(acc[in_er], rate[in_er], n)
    ppw = _posts_per_week(acc, ts, window(acc, ~np.isnan(ts), n_last), n)
    spons = posts.sponsored[o]
    in_sp = window(acc, spons >= 0, n_last)
    cnt = np.bincount(acc[in_sp], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(
            cnt > 0, np.bincount(acc[in_sp], weights=(spons[in_sp] == 1).astype(np.float64), minlength=n) / cnt, np.nan
        )
    ratio, n_sp, n_org = _sponsored_ratio(acc, (posts.likes + posts.comments)[o], spons, n)
    return Figures(er, er_posts.astype(np.int32), ppw, share, ratio, n_sp.astype(np.int32), n_org.astype(np.int32))
