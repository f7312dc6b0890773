"""Account metrics as search reads them: columns aligned with a snapshot's influencer table,
for the metric filters and the export's columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.store.records import Store
from congruence.store.rows import AccountTable


@dataclass(frozen=True)
class MetricsIndex:
    """Aligned with the table, NaN when unknown: er (engagement rate, a fraction),
    posts_per_week, sponsored_share, sponsored_ratio, growth (monthly follower growth, a
    fraction); flags (n,) int32 authenticity flags raised; flag_names (n,) their signals joined
    by ';'; computed (n,) bool: the account has metrics; version: changes whenever any
    account's metrics do."""

    er: np.ndarray
    posts_per_week: np.ndarray
    sponsored_share: np.ndarray
    sponsored_ratio: np.ndarray
    flags: np.ndarray
    flag_names: Sequence[str]
    computed: np.ndarray
    version: str
    growth: np.ndarray

    def __len__(self) -> int:
        return len(self.er)


def load_metrics(store: Store, table: AccountTable) -> MetricsIndex:
    """The metrics of ``table``'s accounts (read once per snapshot)."""
    n = len(table.seq)
    cols = [np.full(n, np.nan) for _ in range(5)]
    flags, computed = np.zeros(n, np.int32), np.zeros(n, bool)
    names = [""] * n
    rows = store.conn.execute(
        "SELECT a.seq, m.engagement_rate, m.posts_per_week, m.sponsored_share, m.sponsored_ratio, m.growth_monthly,"
        " ARRAY(SELECT DISTINCT f->>'signal' FROM jsonb_array_elements(m.flags) f ORDER BY 1)"
        " FROM account_metrics m JOIN accounts a ON a.id = m.account_id WHERE a.kind = 'influencer'"
    ).fetchall()
    if n and rows:
        row_of = np.full(int(table.seq.max()) + 1, -1, np.int64)
        row_of[table.seq] = np.arange(n)
        for seq, *vals, signals in rows:
            i = int(row_of[seq]) if seq < len(row_of) else -1
            if i < 0:
                continue
            for c, v in zip(cols, vals, strict=True):
                c[i] = np.nan if v is None else v
            flags[i], names[i], computed[i] = len(signals), ";".join(signals), True
    ver = store.conn.execute("SELECT count(*), coalesce(max(computed_at)::text, '') FROM account_metrics").fetchone()
    return MetricsIndex(
        cols[0], cols[1], cols[2], cols[3], flags, names, computed, f"{ver[0]}:{ver[1]}" if ver else "0:", cols[4]
    )


def check_computed(metrics: MetricsIndex | None, bounds: MetricBounds | None = None) -> MetricsIndex:
    """InvalidInput when no account has metrics yet, or (``bounds`` on the growth) no account
    has a known growth yet: the filter would pass nobody and not say why."""
    if metrics is None or (len(metrics) and not metrics.computed.any()):
        raise InvalidInput("account metrics have not been computed yet: run `congruence metrics` (ingest does it)")
    if bounds is not None and bounds.on_growth and len(metrics) and not np.isfinite(metrics.growth).any():
        raise InvalidInput(
            "passes nobody yet: no influencer has a known follower growth (it takes two follower counts seen "
            "7 or more days apart: ingest the accounts again later, or give their followers_at)",
            field="min_growth" if bounds.min_growth is not None else "max_growth",
        )
    return metrics


def _fraction_or_none(name: str, v: object, upper: float | None = None, lower: float = 0.0) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < lower:
        raise InvalidInput(f"must be a number of at least {lower:g}, got {v!r}", field=name)
    if upper is not None and v > upper:
        raise InvalidInput(f"must be at most {upper:g}, got {v!r}", field=name)
    return float(v)


@dataclass(frozen=True)
class MetricBounds:
    """The metric filters: min_er, max_er (engagement rate, a fraction: 0.02 is 2 %),
    max_sponsored_share (0-1), min_posts_per_week; min_growth, max_growth (monthly follower
    growth, a fraction from -1: 0.05 is +5 % a month); None = no bound. no_flags: no
    authenticity flag raised. An account whose figure is unknown does not pass a bound on it."""

    min_er: float | None = None
    max_er: float | None = None
    max_sponsored_share: float | None = None
    min_posts_per_week: float | None = None
    no_flags: bool = False
    min_growth: float | None = None
    max_growth: float | None = None

    def checked(self) -> MetricBounds:
        """These bounds as floats, or InvalidInput naming the bad one."""
        out = MetricBounds(
            _fraction_or_none("min_er", self.min_er),
            _fraction_or_none("max_er", self.max_er),
            _fraction_or_none("max_sponsored_share", self.max_sponsored_share, 1.0),
            _fraction_or_none("min_posts_per_week", self.min_posts_per_week),
            bool(self.no_flags),
            _fraction_or_none("min_growth", self.min_growth, lower=-1.0),
            _fraction_or_none("max_growth", self.max_growth, lower=-1.0),
        )
        for lo, hi, what in (("min_er", "max_er", "engagement rate"), ("min_growth", "max_growth", "growth")):
            a, b = getattr(out, lo), getattr(out, hi)
            if a is not None and b is not None and a > b:
                raise InvalidInput(f"({a:g}) is greater than the maximum {what} ({b:g})", field=lo)
        return out

    @classmethod
    def of(cls, source: object) -> MetricBounds:
        """The bounds that ``source`` (a request, parsed arguments, ``Filters``) holds as
        attributes of the same names; one it lacks: no bound."""
        none = cls()
        return cls(**{f.name: getattr(source, f.name, getattr(none, f.name)) for f in fields(cls)})

    @property
    def on_growth(self) -> bool:
        return self.min_growth is not None or self.max_growth is not None

    @property
    def active(self) -> bool:
        return self.no_flags or any(
            v is not None
            for v in (
                self.min_er,
                self.max_er,
                self.max_sponsored_share,
                self.min_posts_per_week,
                self.min_growth,
                self.max_growth,
            )
        )

    def passing(self, m: MetricsIndex) -> np.ndarray:
        """(n,) bool: the accounts of ``m`` within every bound (NaN never passes a bound)."""
        ok = np.ones(len(m), bool)
        with np.errstate(invalid="ignore"):
            if self.min_er is not None:
                ok &= m.er >= self.min_er
            if self.max_er is not None:
                ok &= m.er <= self.max_er
            if self.max_sponsored_share is not None:
                ok &= m.sponsored_share <= self.max_sponsored_share
            if self.min_posts_per_week is not None:
                ok &= m.posts_per_week >= self.min_posts_per_week
            if self.min_growth is not None:
                ok &= m.growth >= self.min_growth
            if self.max_growth is not None:
                ok &= m.growth <= self.max_growth
        if self.no_flags:
            ok &= m.flags == 0
        return ok
