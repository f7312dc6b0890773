"""Filters on influencers, checked once at the boundary and applied as a position mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np

from congruence.core.errors import InvalidInput, first_of
from congruence.indexer.index import VectorIndex
from congruence.safety.categories import NAMES, check_categories
from congruence.search.collab_filters import check_collab_filters, collab_rows, collab_warnings
from congruence.search.list_filters import check_list_filters, unlisted_rows
from congruence.search.metric_filters import MetricBounds, MetricsIndex, check_computed
from congruence.search.safety import SafetyIndex
from congruence.store.collab_index import CollabIndex
from congruence.store.rows import AccountTable

MICRO = (5_000, 100_000)
SAFE_LAST = 20  # brand-safe: no flagged post among the account's newest SAFE_LAST posts
MAX_SAFE_LAST = 10_000


@dataclass(frozen=True)
class Filters:
    """category: exact (case-insensitive); followers bounds inclusive; None = no bound.
    brand_safe: no post flagged in any safety category among the account's newest
    ``safe_last`` posts; exclude_categories: none flagged in these (``safety.categories``).
    min_er, max_er (engagement rate, a fraction), max_sponsored_share, min_posts_per_week,
    min_growth, max_growth (monthly follower growth, a fraction): bounds on the account
    metrics (an unknown figure does not pass a bound on it); no_flags:
    no authenticity flag raised (``metrics.signals``). worked_with: worked with any of these
    handles (a tag, a sponsor, a known match); not_worked_with: with none of these, or (``since``,
    an ISO date) none on or after that day; handles in normal form (``search.collab_filters``).
    exclude_list: leave out the influencers of this campaign list (only those with a status of
    ``exclude_status``, when given); listed: their seqs, read when the search runs
    (``search.list_filters.resolve``; None: not read yet)."""

    category: str | None = None
    min_followers: int | None = None
    max_followers: int | None = None
    brand_safe: bool = False
    exclude_categories: tuple[str, ...] = ()
    safe_last: int = SAFE_LAST
    min_er: float | None = None
    max_er: float | None = None
    max_sponsored_share: float | None = None
    min_posts_per_week: float | None = None
    no_flags: bool = False
    worked_with: tuple[str, ...] = ()
    not_worked_with: tuple[str, ...] = ()
    since: str | None = None
    exclude_list: str | None = None
    exclude_status: tuple[str, ...] = ()
    listed: tuple[int, ...] | None = None
    min_growth: float | None = None
    max_growth: float | None = None

    def __post_init__(self) -> None:  # a job file's JSON gives lists: keep the filter hashable
        for name in ("exclude_categories", "worked_with", "not_worked_with", "exclude_status"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.listed is not None:
            object.__setattr__(self, "listed", tuple(int(s) for s in self.listed))

    @classmethod
    def make(
        cls,
        category: str | None = None,
        min_followers: int | None = None,
        max_followers: int | None = None,
        micro: bool = False,
        brand_safe: bool = False,
        exclude_categories: Sequence[str] | None = None,
        safe_last: int | None = None,
        metrics: MetricBounds | None = None,
        worked_with: Sequence[str] | None = None,
        not_worked_with: Sequence[str] | None = None,
        since: str | date | None = None,
        exclude_list: str | None = None,
        exclude_status: Sequence[str] | str | None = None,
    ) -> Filters:
        for name, v in (("min_followers", min_followers), ("max_followers", max_followers)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InvalidInput(f"must be a non-negative whole number, got {v!r}", field=name)
        if min_followers is not None and max_followers is not None and min_followers > max_followers:
            raise InvalidInput(
                f"({min_followers}) is greater than the maximum follower count ({max_followers})", field="min_followers"
            )
        if micro:
            lo = MICRO[0] if min_followers is None else max(min_followers, MICRO[0])
            hi = MICRO[1] if max_followers is None else min(max_followers, MICRO[1])
            if lo > hi:  # min <= max here, so one bound lies outside the micro range
                name, v = ("min_followers", min_followers) if lo > MICRO[1] else ("max_followers", max_followers)
                raise InvalidInput(
                    f"({v}) leaves no micro-influencer: they have {MICRO[0]:,}-{MICRO[1]:,} followers", field=name
                )
            min_followers, max_followers = lo, hi
        cat = category.strip().lower() if category else None
        if cat is not None and len(cat) > 100:
            raise InvalidInput("is longer than 100 characters", field="category")
        last = SAFE_LAST if safe_last is None else safe_last
        if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_SAFE_LAST:
            raise InvalidInput(f"must be a whole number from 1 to {MAX_SAFE_LAST}, got {last!r}", field="safe_last")
        excluded = check_categories(exclude_categories)
        screened = bool(brand_safe) or bool(excluded)
        if safe_last is not None and not screened:  # a bound nothing reads: the user meant a screen
            raise InvalidInput(
                f"({safe_last}) applies only with a brand-safety filter (brand-safe, or categories to exclude): "
                "it is how many newest posts they look at",
                field="safe_last",
            )
        m = (metrics or MetricBounds()).checked()
        worked, not_worked, day = check_collab_filters(worked_with, not_worked_with, since)
        listed_in, statuses = check_list_filters(exclude_list, exclude_status)
        return cls(
            cat or None,
            min_followers,
            max_followers,
            bool(brand_safe),
            excluded,
            last if screened else SAFE_LAST,
            m.min_er,
            m.max_er,
            m.max_sponsored_share,
            m.min_posts_per_week,
            m.no_flags,
            worked,
            not_worked,
            day,
            listed_in,
            statuses,
            min_growth=m.min_growth,
            max_growth=m.max_growth,
        )

    @property
    def bounds(self) -> MetricBounds:
        return MetricBounds.of(self)

    @property
    def screened(self) -> bool:
        """Whether the brand-safety screen decides who passes."""
        return self.brand_safe or bool(self.exclude_categories)

    @property
    def collab(self) -> bool:
        """Whether a collaboration filter decides who passes."""
        return bool(self.worked_with or self.not_worked_with)

    @property
    def active(self) -> bool:
        return (
            self.screened
            or self.bounds.active
            or self.collab
            or self.exclude_list is not None
            or any(v is not None for v in (self.category, self.min_followers, self.max_followers))
        )

    def to_json(self) -> dict[str, object]:
        """The fields as JSON takes them (lists for tuples): an export job's file, a resume's
        fingerprint; ``Filters(**d)`` reads it back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def warnings(self, collabs: CollabIndex | None) -> list[str]:
        """Why a filter may give less than it seems to ask for, in sentences (an answer carries
        them; none is an error): a collaboration filter's handle nobody ever named."""
        return collab_warnings(collabs, self.worked_with, self.not_worked_with)

    def rows(
        self,
        table: AccountTable,
        safety: SafetyIndex | None = None,
        metrics: MetricsIndex | None = None,
        collabs: CollabIndex | None = None,
    ) -> np.ndarray:
        """Boolean mask over the table's rows that pass (``safety``: the screen's view of the
        same table, needed when ``screened``; ``metrics``: the account metrics, aligned, needed
        for a metric bound; ``collabs``: the collaboration graph, aligned, needed for a
        collaboration filter)."""
        ok = np.ones(len(table.ids), bool)
        if self.exclude_list is not None:
            ok &= unlisted_rows(table.seq, self.listed)
        if self.collab:
            ok &= collab_rows(collabs, self.worked_with, self.not_worked_with, self.since)
        if self.bounds.active:
            ok &= self.bounds.passing(check_computed(metrics, self.bounds))
        if self.screened:
            cats = NAMES if self.brand_safe else self.exclude_categories
            if safety is None:
                raise InvalidInput("brand-safety filters need the safety screen: run `congruence screen`")
            ok &= safety.passing(cats, self.safe_last)
        if self.category is not None:
            ok &= table.category_codes[0] == self.category_code(table)
        if self.min_followers is not None:
            ok &= table.followers >= self.min_followers
        if self.max_followers is not None:
            ok &= (table.followers <= self.max_followers) & (table.followers >= 0)
        return ok

    def category_code(self, table: AccountTable) -> int | None:
        """The table's code of ``category`` (None: no category filter); InvalidInput, listing
        the categories there are, when no influencer has it (a typo would otherwise look like
        an empty result)."""
        if self.category is None:
            return None
        index = table.category_codes[1]
        code = index.get(self.category)
        if code is None:
            known = sorted(c for c in index if c)
            raise InvalidInput(
                f"no influencer has the category {self.category!r}; the categories are: {first_of(known, 20) or 'none'}"
            )
        return code

    def mask(
        self,
        table: AccountTable,
        index: VectorIndex,
        exclude: np.ndarray | None = None,
        safety: SafetyIndex | None = None,
        metrics: MetricsIndex | None = None,
        collabs: CollabIndex | None = None,
    ) -> np.ndarray | None:
        """(ntotal,) mask over index positions, or None when nothing is filtered."""
        if not self.active and (exclude is None or len(exclude) == 0):
            return None
        mask = np.zeros(index.ntotal, bool)
        pos = index.positions(table.seq[self.rows(table, safety, metrics, collabs)])
        mask[pos[pos >= 0]] = True
        if exclude is not None and len(exclude):
            ex = index.positions(exclude)
            mask[ex[ex >= 0]] = False
        return mask
