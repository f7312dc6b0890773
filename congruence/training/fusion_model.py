"""Content and collaborative evidence in one score: a LightGBM ``lambdarank`` model over a
query's candidates, learned on training brands (``training.fusion``), never tuned on the brands
it is measured on (docs/collaborations.md).

A query's features are made from its candidate list alone, so that one list's scores never
depend on another's (an export's rows stay ``match``'s):

- ``content``: the content score's z-score and rank percentile within the list (not the score
  itself: the scale of a head's score, a cosine in its tower (``similar``) or a score moved by
  feedback differ, their order within a list does not);
- ``collab``: the co-occurrence score (``collab_signal``), log1p, and its rank percentile among
  the list's candidates that have one;
- ``category``: the share of the brand's known partners in the candidate's category;
- ``propensity``: log1p of how many distinct handles the candidate worked with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from congruence.store.collab_signal import CollabSignal, Partners
from congruence.store.rows import AccountTable

FEATURES = ("content_z", "content_pct", "collab", "collab_pct", "category", "propensity")


def _pct(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Each of ``x``'s rank percentile among the values ``ref`` (1: none of them is higher; ties
    share the lower rank, as ``rankdata(method="max")`` ranks them)."""
    if len(ref) < 2:
        return np.ones(len(x))
    higher_or_equal = len(ref) - np.searchsorted(np.sort(ref), x, side="left")
    return np.clip(1.0 - (higher_or_equal - 1) / (len(ref) - 1), 0.0, 1.0)


def features(
    content: np.ndarray,
    collab: np.ndarray,
    category: np.ndarray,
    propensity: np.ndarray,
    ref: np.ndarray | None = None,
) -> np.ndarray:
    """(n, len(FEATURES)) float64 features of one query's n candidates (a content score that is
    not finite, a candidate the head could not score, counts as the list's lowest). ref: (n,)
    bool, the candidates the list's statistics are taken over (all by default; a served list
    leaves out the brand's known partners, as the lists the fusion learned on do)."""
    ref = np.ones(len(content), bool) if ref is None else np.asarray(ref, bool)
    c = np.asarray(content, np.float64)
    ok = np.isfinite(c)
    c = np.where(ok, c, c[ok].min() if ok.any() else 0.0)
    base = c[ref] if ref.any() else c
    sd = base.std()
    z = (c - base.mean()) / sd if sd > 0 else np.zeros(len(c))
    col = np.log1p(np.maximum(np.asarray(collab, np.float64), 0.0))
    has = col > 0
    col_pct = np.zeros(len(col))
    col_pct[has] = _pct(col[has], col[has & ref])
    return np.column_stack([z, _pct(c, base), col, col_pct, category, np.log1p(propensity)])


def category_share(table: AccountTable, known: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows``, the share of the ``known`` partner rows in its category."""
    codes = table.category_codes[0]
    if not len(known):
        return np.zeros(len(rows))
    counts = np.bincount(codes[known], minlength=int(codes.max()) + 1 if len(codes) else 1)
    return counts[codes[rows]] / len(known)


def query_features(
    signal: CollabSignal,
    table: AccountTable,
    partners: Partners,
    rows: np.ndarray,
    content: np.ndarray,
    w: np.ndarray | None = None,
    discount: np.ndarray | None = None,
) -> np.ndarray:
    """The fusion's features of candidate ``rows`` (table rows) with content scores ``content``
    for a brand with ``partners`` (``w``: its handle weights, when computed already;
    ``discount``: per row, edges not to count in its propensity). The list's statistics leave
    out the known partners among ``rows``."""
    w = signal.weights(partners) if w is None else w
    prop = signal.propensity(rows)
    if discount is not None:
        prop = np.maximum(prop - discount, 0)
    ref = ~np.isin(rows, partners.rows)
    return features(content, signal.scores(w, rows), category_share(table, partners.rows, rows), prop, ref)


@dataclass(frozen=True)
class Fusion:
    """A learned fusion: LightGBM's model text, and what it was learned on (for ``ranking``)."""

    model: str
    brands: int  # training brands it was learned on
    lists: int  # simulated warm starts (one known/hidden split of one brand each)

    @property
    def booster(self):  # type: ignore[no-untyped-def]
        b = self.__dict__.get("_booster")
        if b is None:
            import lightgbm

            b = lightgbm.Booster(model_str=self.model)
            object.__setattr__(self, "_booster", b)
        return b

    def score(self, x: np.ndarray) -> np.ndarray:
        """(n,) scores of a feature matrix (higher is better)."""
        if not len(x):
            return np.zeros(0)
        return np.asarray(self.booster.predict(x, num_threads=1), np.float64)

    def to_meta(self) -> dict[str, str | int]:
        return {"fusion": self.model, "fusion_brands": self.brands, "fusion_lists": self.lists}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> Fusion | None:
        model = meta.get("fusion")
        if not isinstance(model, str) or not model:
            return None
        return cls(model, int(meta.get("fusion_brands", 0) or 0), int(meta.get("fusion_lists", 0) or 0))  # type: ignore[call-overload]
