"""Ranking metrics for brand -> influencer retrieval (pure numpy).

The protocol of Gan et al. (ACM MM 2019): every test brand ranks the same set of
candidate influencers; per brand we measure AUC, category AUC (cAUC), recall@k, the
rank of the first true match and its reciprocal, then average over brands (median for
MedR). Ties in a ranking are broken against the positives, so a scorer that gives
everyone the same score gets no credit for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def _inputs(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positives, dtype=bool)
    if s.ndim != 1:
        raise ValueError(f"scores: expected ndim to be 1, got {s.ndim}")
    if p.shape != s.shape:
        raise ValueError(f"positives: expected shape {s.shape}, got {p.shape}")
    return s, p


def _ranking(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Candidate order, best first; among equal scores negatives come first."""
    return np.lexsort((p, -s))


def auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """P(a random positive scores above a random negative); ties count 0.5.

    nan when there is no positive or no negative.
    """
    s, p = _inputs(scores, positives)
    pos, neg = s[p], np.sort(s[~p])
    if pos.size == 0 or neg.size == 0:
        return math.nan
    below = np.searchsorted(neg, pos, side="left")
    tied = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * tied).sum() / (pos.size * neg.size))


def recall_at_k(scores: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Fraction of the positives ranked in the top ``k``; nan when there is no positive."""
    if k < 1:
        raise ValueError(f"k: must be at least 1, got {k}")
    s, p = _inputs(scores, positives)
    n_pos = int(p.sum())
    if n_pos == 0:
        return math.nan
    return float(p[_ranking(s, p)[:k]].sum() / n_pos)


def first_rank(scores: np.ndarray, positives: np.ndarray) -> int:
    """1-based rank of the best-ranked positive. Raises ValueError without positives."""
    s, p = _inputs(scores, positives)
    if not p.any():
        raise ValueError("positives: expected at least one True")
    return int(np.argmax(p[_ranking(s, p)])) + 1


def reciprocal_rank(scores: np.ndarray, positives: np.ndarray) -> float:
    """1 / first_rank; 0.0 when there is no positive."""
    s, p = _inputs(scores, positives)
    return 1.0 / first_rank(s, p) if p.any() else 0.0


@dataclass(frozen=True)
class BrandMetrics:
    """Metrics of one brand's ranking; cauc is nan when its category subset is degenerate."""

    brand_id: str
    n_candidates: int
    n_positives: int
    auc: float
    cauc: float
    recall_at_10: float
    recall_at_50: float
    first_rank: int
    reciprocal_rank: float


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _nanmean(xs: Sequence[float]) -> float:
    a = np.asarray(xs, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


@dataclass(frozen=True)
class Metrics:
    """Metrics averaged over brands (nan-skipping means; medr is a median).

    ``per_brand`` holds one row per evaluated brand (brands with no positive candidate
    are not evaluated and not counted in ``n_brands``).
    """

    auc: float
    cauc: float
    recall_at_10: float
    recall_at_50: float
    medr: float
    mrr: float
    n_brands: int
    per_brand: tuple[BrandMetrics, ...] = ()

    def to_dict(self) -> dict[str, float | int | None]:
        """Keys auc, cauc, recall@10, recall@50, medr, mrr, n_brands; nan becomes None."""
        return {
            "auc": _none_if_nan(self.auc),
            "cauc": _none_if_nan(self.cauc),
            "recall@10": _none_if_nan(self.recall_at_10),
            "recall@50": _none_if_nan(self.recall_at_50),
            "medr": _none_if_nan(self.medr),
            "mrr": _none_if_nan(self.mrr),
            "n_brands": self.n_brands,
        }

    def per_brand_dicts(self) -> list[dict[str, object]]:
        return [
            {k: (_none_if_nan(v) if isinstance(v, float) else v) for k, v in asdict(b).items()} for b in self.per_brand
        ]


def category_auc(
    scores: np.ndarray, positives: np.ndarray, brand_category: str, candidate_categories: Sequence[str]
) -> float:
    """AUC over the candidates whose category equals the brand's; nan if it is unknown ("")."""
    s, p = _inputs(scores, positives)
    if len(candidate_categories) != s.size:
        raise ValueError(f"candidate_categories: expected {s.size} entries, got {len(candidate_categories)}")
    if not brand_category:
        return math.nan
    same = np.asarray([c == brand_category for c in candidate_categories], dtype=bool)
    return auc(s[same], p[same])


def brand_metrics(
    brand_id: str,
    scores: np.ndarray,
    positives: np.ndarray,
    brand_category: str,
    candidate_categories: Sequence[str],
) -> BrandMetrics:
    """All per-brand metrics of one ranking; ``positives`` must hold at least one True."""
    s, p = _inputs(scores, positives)
    return BrandMetrics(
        brand_id=brand_id,
        n_candidates=int(s.size),
        n_positives=int(p.sum()),
        auc=auc(s, p),
        cauc=category_auc(s, p, brand_category, candidate_categories),
        recall_at_10=recall_at_k(s, p, 10),
        recall_at_50=recall_at_k(s, p, 50),
        first_rank=first_rank(s, p),
        reciprocal_rank=reciprocal_rank(s, p),
    )


def evaluate_rankings(
    scores: np.ndarray,
    positives: np.ndarray,
    brand_ids: Sequence[str],
    brand_categories: Sequence[str],
    candidate_categories: Sequence[str],
) -> Metrics:
    """Aggregate metrics of nq brands each ranking the same nb candidates.

    scores: (nq, nb) higher is better. positives: (nq, nb) bool, True for true matches.
    Brands without any positive candidate are skipped.
    """
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positives, dtype=bool)
    if s.ndim != 2 or p.shape != s.shape:
        raise ValueError(f"scores and positives: expected one (nq, nb) shape, got {s.shape}, {p.shape}")
    if len(brand_ids) != s.shape[0] or len(brand_categories) != s.shape[0]:
        raise ValueError(f"brand_ids and brand_categories: expected {s.shape[0]} entries")
    rows = [
        brand_metrics(brand_ids[i], s[i], p[i], brand_categories[i], candidate_categories)
        for i in range(s.shape[0])
        if p[i].any()
    ]
    return Metrics(
        auc=_nanmean([r.auc for r in rows]),
        cauc=_nanmean([r.cauc for r in rows]),
        recall_at_10=_nanmean([r.recall_at_10 for r in rows]),
        recall_at_50=_nanmean([r.recall_at_50 for r in rows]),
        medr=float(np.median([r.first_rank for r in rows])) if rows else math.nan,
        mrr=_nanmean([r.reciprocal_rank for r in rows]),
        n_brands=len(rows),
        per_brand=tuple(rows),
    )
