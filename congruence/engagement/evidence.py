"""Which concepts have a measured effect on engagement: screened on training accounts, confirmed on held-out ones.

Arrays: ``x`` (n, m) bool, whether each of n posts shows each of m candidate concepts;
``z`` (n,) the engagement label (robust within-account z of log-likes, ``labels``);
``groups`` (n,) int account of each post; ``controls`` (n, k) float64 covariates held fixed
(e.g. brightness when the candidates are image concepts), or None.

The effect of concept j is the within-account (fixed-effects) OLS slope of ``z`` on ``x[:, j]``
and the controls: how much higher a post showing the concept scores, on its own account's
scale, than that account's posts without it. Only accounts with posts both with and without
the concept inform it. Two stages, so that picking the best of many concepts does not
make a chance one look real:

1. **Screen** on the training accounts: slope and account-clustered standard error; a
   concept goes on when its slope is positive at one-sided 5 % and at least ``MIN_ACCOUNTS``
   accounts compare posts with and without it; the ``MAX_TESTED`` strongest go on.
2. **Confirm** on the held-out accounts: the slope re-estimated there, with an interval from
   ``N_BOOT`` bootstrap resamples of the held-out accounts (normal, from the bootstrap
   standard error), Bonferroni-adjusted over the concepts tested (a simultaneous 95 %
   interval). A concept *qualifies* when that interval's lower end is above zero.

Everything is computed from per-account sums (``_account_stats``), so a bootstrap replicate
only re-weights accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
SCREEN_Z = NormalDist().inv_cdf(1 - ALPHA)  # one-sided 5 %
MAX_TESTED = 20
MIN_ACCOUNTS = 5  # accounts with posts both with and without the concept, on each side
N_BOOT = 2000
CHUNK = 128  # candidates at a time: per-account sums are (accounts, chunk, p, p)


@dataclass(frozen=True)
class Effect:
    """One concept tested on held-out accounts.

    lift: held-out within-account slope (robust z of log-likes), low/high: its simultaneous
    interval; posts: held-out posts showing it in accounts that also have posts without it;
    accounts: those accounts. train_*: the same on the training accounts (the screen).
    """

    name: str
    kind: str
    lift: float
    low: float
    high: float
    posts: int
    accounts: int
    train_lift: float
    train_posts: int
    train_accounts: int

    @property
    def qualified(self) -> bool:
        return self.low > 0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "lift": _num(self.lift),
            "ci": [_num(self.low), _num(self.high)],
            "posts": self.posts,
            "accounts": self.accounts,
            "qualified": self.qualified,
            "train": {"lift": round(self.train_lift, 4), "posts": self.train_posts, "accounts": self.train_accounts},
        }


def _num(v: float) -> float | None:
    return round(v, 4) if np.isfinite(v) else None


@dataclass(frozen=True)
class Candidates:
    """m candidate concepts of one kind. x: (n, m) bool presence; rows: (n,) bool, posts where
    presence is known (an image concept needs an image); controls: (n, k) float64 or None."""

    kind: str
    names: list[str]
    x: np.ndarray
    rows: np.ndarray
    controls: np.ndarray | None = None


@dataclass(frozen=True)
class Evidence:
    """The tested concepts (qualified or not, best lift first) and how they were found."""

    effects: list[Effect]
    screened: int  # candidates looked at on the training accounts
    level: float  # per-concept two-sided level of the intervals (Bonferroni)
    n_boot: int

    @property
    def qualified(self) -> list[Effect]:
        return [e for e in self.effects if e.qualified]

    def method(self) -> str:
        return (
            f"within-account OLS slope of the robust z of log-likes; {self.screened} candidate concepts screened "
            f"on training accounts (positive at one-sided 5 %, >= {MIN_ACCOUNTS} accounts), the "
            f"{len(self.effects)} strongest confirmed on held-out accounts: 95 % simultaneous interval "
            f"(Bonferroni, per concept {1 - self.level:.4f}) from {self.n_boot} bootstrap resamples of accounts"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "tested": [e.to_dict() for e in self.effects],
            "qualified": len(self.qualified),
            "screened": self.screened,
            "method": self.method(),
        }


def _group_index(groups: np.ndarray) -> tuple[np.ndarray, int]:
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    return g.ravel(), int(g.max()) + 1 if len(g) else 0


def _sum_by(values: np.ndarray, g: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, ...) sums of the rows of ``values`` (n, ...) by group index ``g``."""
    out = np.zeros((n_groups, *values.shape[1:]), np.float64)
    if len(g):
        order = np.argsort(g, kind="stable")
        gs = g[order]
        starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
        out[gs[starts]] = np.add.reduceat(np.asarray(values, np.float64)[order], starts, axis=0)
    return out


def _demean(values: np.ndarray, g: np.ndarray, n_groups: int) -> np.ndarray:
    counts = np.bincount(g, minlength=n_groups).astype(np.float64)
    means = _sum_by(values, g, n_groups) / np.maximum(counts, 1).reshape(-1, *([1] * (values.ndim - 1)))
    return values - means[g]


def _account_stats(
    x: np.ndarray, z: np.ndarray, g: np.ndarray, n_groups: int, controls: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-account sums A (G, m, p, p) of u uᵀ and r (G, m, p) of u z, u = [x_j, controls] demeaned."""
    xd = _demean(np.asarray(x, np.float64), g, n_groups)
    zd = _demean(np.asarray(z, np.float64), g, n_groups)
    c = np.zeros((len(z), 0)) if controls is None else _demean(np.asarray(controls, np.float64), g, n_groups)
    m, k = xd.shape[1], c.shape[1]
    u = np.concatenate([xd[:, :, None], np.broadcast_to(c[:, None, :], (len(z), m, k))], axis=2)
    return _sum_by(u[:, :, :, None] * u[:, :, None, :], g, n_groups), _sum_by(u * zd[:, None, None], g, n_groups)


def _slopes(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(..., p) coefficients solving a β = r; NaN where a is singular (no variation)."""
    ok = np.abs(np.linalg.det(a)) > 1e-9
    beta = np.full(r.shape, np.nan)
    if ok.any():
        beta[ok] = np.linalg.solve(a[ok], r[ok][..., None])[..., 0]
    return beta


def _clustered_se(a_g: np.ndarray, r_g: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """(m,) account-clustered standard error of the first coefficient (sandwich, G/(G-1))."""
    n_groups = a_g.shape[0]
    s = r_g - np.einsum("gmpq,mq->gmp", a_g, np.nan_to_num(beta))  # each account's score
    meat = np.einsum("gmp,gmq->mpq", s, s) * n_groups / max(n_groups - 1, 1)
    a = a_g.sum(0)
    inv = np.linalg.pinv(a)
    return np.sqrt(np.maximum(np.einsum("mp,mpq,mq->m", inv[:, 0], meat, inv[:, 0]), 0.0))


def _support(x: np.ndarray, g: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(m,) posts showing each concept in accounts that also have posts without it, and those accounts."""
    shown = _sum_by(np.asarray(x, np.float64), g, n_groups)
    total = np.bincount(g, minlength=n_groups)[:, None]
    both = (shown > 0) & (shown < total)
    return (shown * both).sum(0).astype(np.int64), both.sum(0).astype(np.int64)


def screen(c: Candidates, z: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(slope, t, posts, accounts), each (m,), of every candidate over the posts at ``c.rows``."""
    rows = np.flatnonzero(c.rows)
    g, n_groups = _group_index(groups[rows])
    m = len(c.names)
    slope, t = np.full(m, np.nan), np.full(m, np.nan)
    for lo in range(0, m, CHUNK):
        part = slice(lo, min(m, lo + CHUNK))
        ctrl = None if c.controls is None else c.controls[rows]
        a_g, r_g = _account_stats(c.x[rows, part], z[rows], g, n_groups, ctrl)
        beta = _slopes(a_g.sum(0), r_g.sum(0))
        slope[part] = beta[:, 0]
        t[part] = beta[:, 0] / np.maximum(_clustered_se(a_g, r_g, beta), 1e-12)
    posts, accounts = _support(c.x[rows], g, n_groups)
    return slope, t, posts, accounts


def bootstrap(
    c: Candidates, cols: np.ndarray, z: np.ndarray, groups: np.ndarray, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(slope, bootstrap standard error), each (len(cols),), over the posts at ``c.rows``."""
    rows = np.flatnonzero(c.rows)
    g, n_groups = _group_index(groups[rows])
    ctrl = None if c.controls is None else c.controls[rows]
    a_g, r_g = _account_stats(c.x[np.ix_(rows, cols)], z[rows], g, n_groups, ctrl)
    slope = _slopes(a_g.sum(0), r_g.sum(0))[:, 0]
    rng = np.random.default_rng([seed, 22])
    w = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(np.float64)
    a_b = (w @ a_g.reshape(n_groups, -1)).reshape(n_boot, *a_g.shape[1:])
    r_b = (w @ r_g.reshape(n_groups, -1)).reshape(n_boot, *r_g.shape[1:])
    boot = _slopes(a_b, r_b)[:, :, 0]
    se = np.full(len(cols), np.inf)  # a slope that a resample often cannot estimate has no interval
    for j in np.flatnonzero(np.isfinite(boot).mean(0) >= 0.95):
        se[j] = float(np.std(boot[np.isfinite(boot[:, j]), j]))
    return slope, se


def _confirm(
    c: Candidates,
    cols: list[int],
    z: np.ndarray,
    groups: np.ndarray,
    test: np.ndarray,
    q: float,
    n_boot: int,
    seed: int,
) -> list[tuple[float, float, float, int, int]]:
    """(lift, low, high, posts, accounts) on the held-out posts of each of ``cols``."""
    held = Candidates(c.kind, c.names, c.x, c.rows & test, c.controls)
    rows = np.flatnonzero(held.rows)
    g, n_groups = _group_index(groups[rows])
    posts, accounts = _support(c.x[np.ix_(rows, np.asarray(cols, np.int64))], g, n_groups)
    slope, se = (
        bootstrap(held, np.asarray(cols), z, groups, n_boot, seed)
        if n_groups
        else (np.full(len(cols), np.nan), np.full(len(cols), np.inf))
    )
    out = []
    for j in range(len(cols)):
        s = float(slope[j]) if accounts[j] >= MIN_ACCOUNTS else float("nan")
        out.append((s, s - q * float(se[j]), s + q * float(se[j]), int(posts[j]), int(accounts[j])))
    return out


def measure(
    candidates: list[Candidates],
    z: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Evidence:
    """Screen every candidate on the ``train`` posts, confirm the strongest on the ``test`` posts
    ((n,) bool masks of posts of disjoint accounts); see the module docstring."""
    found: list[tuple[float, int, int, float, int, int]] = []  # t, family, column, slope, posts, accounts
    screened = 0
    for f, c in enumerate(candidates):
        slope, t, posts, accounts = screen(Candidates(c.kind, c.names, c.x, c.rows & train, c.controls), z, groups)
        screened += len(c.names)
        ok = np.flatnonzero((slope > 0) & (t >= SCREEN_Z) & (accounts >= MIN_ACCOUNTS))
        found += [(float(t[j]), f, int(j), float(slope[j]), int(posts[j]), int(accounts[j])) for j in ok]
    kept = sorted(found, key=lambda r: (-r[0], r[1], r[2]))[:MAX_TESTED]
    level = ALPHA / max(len(kept), 1)
    q = NormalDist().inv_cdf(1 - level / 2)
    effects: list[Effect] = []
    for f, c in enumerate(candidates):
        mine = [r for r in kept if r[1] == f]
        if not mine:
            continue
        held = _confirm(c, [r[2] for r in mine], z, groups, test, q, n_boot, seed)
        effects += [
            Effect(c.names[r[2]], c.kind, *h, train_lift=r[3], train_posts=r[4], train_accounts=r[5])
            for r, h in zip(mine, held, strict=True)
        ]
    effects.sort(key=lambda e: (not e.qualified, -np.nan_to_num(e.lift, nan=-np.inf), e.name))
    return Evidence(effects, screened, level, n_boot)
