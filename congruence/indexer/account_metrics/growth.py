"""Follower growth, from the sightings of ``store.follower_history`` (each run of one count is
seen at its first and its last date, so a count that stayed flat keeps the figures current and
a jump is dated between the last sighting before it and the first after).

- ``growth_monthly``: from a base sighting to the account's newest, compounded to a month of
  30.44 days: (f_newest / f_base) ** (30.44 / days between) - 1 (0.05 is +5 % a month). The
  base is the oldest sighting of the 90 days before the newest that is at least 7 days older
  (the recent trend, not the account's whole life); when there is none, the newest sighting at
  least 7 days older. Unknown without two sightings 7 or more days apart, or when the base
  count is 0.
- ``growth_spike`` flag: the account's steepest rise of +5 % or more between two consecutive
  sightings, as a monthly log rate ln(f_i / f_i-1) x 30.44 / max(days between, 7) (the floor
  keeps a day's noise from counting as a month's), is a robust z beyond +Z_MAX both from
  its peers' rises (every rise between consecutive sightings of accounts of the same kind,
  category and follower band; fewer than 20 such accounts: the same kind and band) and from its
  own other rises, when it has 3 or more (their median; scale 1.4826 x MAD). Scales are at
  least FLOOR, so a group of flat accounts still has a range. Bought followers arrive as such
  jumps; steady growth does not fire.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from congruence.indexer.account_metrics.signals import BAND_NAMES, Z_MAX, codes, follower_band, peer_z
from congruence.store.account_metrics import AccountArrays, Flag
from congruence.store.follower_history import SnapshotArrays

DAY = 86400.0
MONTH_DAYS = 30.44
MIN_DAYS = 7.0  # the shortest span a growth rate is measured over
RECENT_DAYS = 90.0
MIN_OWN = 3  # other rises an account needs before its own history is a reference
MIN_RISE = 0.05  # a rise smaller than 5 % is never a spike
FLOOR = 0.01  # the smallest scale of a robust z, in monthly log growth (about 1 % a month)


def _group_ends(account: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) snapshot index of each account; -1 for an account without any."""
    first, last = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    if len(account):
        idx = np.arange(len(account))
        np.maximum.at(last, account, idx)
        first[account[::-1]] = idx[::-1]
    return first, last


def growth_monthly(n: int, s: SnapshotArrays) -> tuple[np.ndarray, np.ndarray]:
    """((n,) monthly growth, NaN when unknown; (n,) snapshots per account)."""
    counts = np.bincount(s.account, minlength=n)
    out = np.full(n, np.nan)
    if not len(s.account):
        return out, counts
    _, last = _group_ends(s.account, n)
    age = (s.ts[last[s.account]] - s.ts) / DAY
    old_enough = age >= MIN_DAYS
    idx = np.arange(len(age))
    recent = np.full(n, len(age), np.int64)  # the oldest recent one: the smallest index
    np.minimum.at(recent, s.account[old_enough & (age <= RECENT_DAYS)], idx[old_enough & (age <= RECENT_DAYS)])
    newest_old = np.full(n, -1, np.int64)
    np.maximum.at(newest_old, s.account[old_enough], idx[old_enough])
    base = np.where(recent < len(age), recent, newest_old)
    has = (base >= 0) & (last >= 0)
    b, e = base[has], last[has]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (s.followers[e] / s.followers[b]) ** (MONTH_DAYS * DAY / (s.ts[e] - s.ts[b])) - 1
    out[has] = np.where(s.followers[b] > 0, g, np.nan)
    return out, counts


def _rises(s: SnapshotArrays) -> tuple[np.ndarray, np.ndarray]:
    """(k,) index of each interval's later snapshot (same account as the one before), (k,) its
    monthly log rate (NaN when a count is 0)."""
    j = np.flatnonzero(s.account[1:] == s.account[:-1]) + 1
    days = np.maximum((s.ts[j] - s.ts[j - 1]) / DAY, MIN_DAYS)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.log(s.followers[j] / s.followers[j - 1]) * MONTH_DAYS / days
    return j, np.where((s.followers[j] > 0) & (s.followers[j - 1] > 0), rate, np.nan)


def _own(rate: np.ndarray, owner: np.ndarray, steepest: int) -> tuple[float, int]:
    """(robust z of the steepest rise against the account's other rises, how many); NaN when
    fewer than MIN_OWN."""
    others = rate[(owner == owner[steepest]) & ~np.isnan(rate)]
    others = np.delete(others, np.flatnonzero(others == rate[steepest])[:1])
    if len(others) < MIN_OWN:
        return float("nan"), len(others)
    med = float(np.median(others))
    scale = max(1.4826 * float(np.median(np.abs(others - med))), FLOOR)
    return (float(rate[steepest]) - med) / scale, len(others)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def growth_spike_flags(accounts: AccountArrays, s: SnapshotArrays) -> list[list[Flag]]:
    """Every account's growth_spike flag (aligned with ``accounts``), see the module doc."""
    n = len(accounts.ids)
    out: list[list[Flag]] = [[] for _ in range(n)]
    j, rate = _rises(s)
    if not len(j):
        return out
    owner = s.account[j]
    band = follower_band(accounts.followers)[owner]
    kinds, cats = [accounts.kinds[i] for i in owner], [accounts.categories[i] for i in owner]
    ok = ~np.isnan(rate)
    p = peer_z(rate, ok & (band >= 0), [codes(kinds, cats, band), codes(kinds, band)], FLOOR, owner)
    rise = np.where(ok, s.followers[j] / np.where(ok, s.followers[j - 1], 1.0) - 1, 0.0)
    big = ok & (rise >= MIN_RISE)
    steep = np.full(n, -np.inf)
    np.maximum.at(steep, owner[big], rate[big])
    for k in np.flatnonzero(big & (rate == steep[owner]) & (np.nan_to_num(p.z) > Z_MAX)):
        i = int(owner[k])
        if out[i]:
            continue  # two rises equally steep: one flag
        z_own, n_own = _own(rate, owner, int(k))
        if n_own >= MIN_OWN and not z_own > Z_MAX:
            continue
        a, b = int(j[k]) - 1, int(j[k])
        group = (f"{cats[k]} " if p.level[k] == 0 and cats[k] else "") + f"{kinds[k]}s with {BAND_NAMES[band[k]]}"
        own = f" and {z_own:+.1f} against its own {n_own} other rises" if n_own >= MIN_OWN else ""
        out[i].append(
            Flag(
                "growth_spike",
                round(float(min(p.z[k], z_own) if n_own >= MIN_OWN else p.z[k]), 2),
                Z_MAX,
                f"followers rose {100 * rise[k]:.0f} % ({s.followers[a]:,.0f} to {s.followers[b]:,.0f}) between "
                f"{_day(s.ts[a])} and {_day(s.ts[b])}: robust z {p.z[k]:+.1f} against the rises of {group} "
                f"followers (median {100 * np.expm1(p.median[k]):+.1f} % a month, n={p.n[k]} accounts){own}; "
                f"threshold +{Z_MAX}",
            )
        )
    return out
