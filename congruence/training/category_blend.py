"""A brand with no known partner (a cold start): its content score blended with a category prior
and collaboration propensity, learned on training brands (docs/collaborations.md).

- ``affinity``: log of the share of partners in the candidate's category among the partners of
  the training brands *of the brand's category* (add-one smoothed): fashion brands mostly work
  with fashion creators, a running-gear maker's partners may be food creators. It is a fact
  about brands of that category, learned from the matches, never from the brand being ranked.
- ``content``: the head's score of the candidate (with feedback's terms when marked), as is:
  one candidate's blended score never depends on the others in its list (an export's rows stay
  ``match``'s), and a served list is the head's candidates reordered (it adds none).
- ``propensity``: log1p of how many distinct handles the candidate tagged or was sponsored by,
  but the brand itself (``CollabIndex.tag_counts``; a known match is a label, not a post).

A logistic regression (scikit-learn) learns the three weights on training brands the head
scoring them never trained on: the fusion's reserved brands when the store has collaboration
evidence, else a seeded quarter of the training brands scored by a head trained on the others
(``training.cold_start``). The blend ranks a query that has a head, a brand category the table
knows, and no learned fusion serving it (``search.collab_rank.blend``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FEATURES = ("content", "affinity", "propensity")
MIN_BRANDS = 4  # fewer brands to learn the weights on: no blend
MIN_PARTNERS = 10  # a brand category needs this many partners among the training brands' to get a row
BLEND_FRACTION = 0.25  # of the training brands with a category and a partner, to learn the weights on
META_KEY = "category_blend"


@dataclass(frozen=True)
class CategoryBlend:
    """The learned blend: per brand category, the log share of partners in each influencer
    category (``other``: a category its partners never had), and the weights of FEATURES."""

    table: Mapping[str, Mapping[str, float]]
    other: Mapping[str, float]
    weights: tuple[float, float, float]
    brands: int  # training brands the weights were learned on

    def knows(self, category: str) -> bool:
        return bool(category) and category in self.table

    def affinity(self, brand_category: str, categories: Sequence[str]) -> np.ndarray:
        row, floor = self.table.get(brand_category, {}), self.other.get(brand_category, 0.0)
        return np.fromiter((row.get(c, floor) for c in categories), np.float64, count=len(categories))

    def score(
        self, content: np.ndarray, brand_category: str, categories: Sequence[str], propensity: np.ndarray
    ) -> np.ndarray:
        """(n,) blended scores (higher is better); a content score that is not finite stays -inf."""
        c = np.asarray(content, np.float64)
        w = self.weights
        out = w[0] * c + w[1] * self.affinity(brand_category, categories) + w[2] * np.log1p(propensity)
        return np.where(np.isfinite(c), out, -np.inf)

    def describe(self, brand_category: str) -> str:
        return f"category prior of {brand_category} brands, learned blend"

    def to_meta(self) -> dict[str, str]:
        body = {"table": self.table, "other": self.other, "weights": list(self.weights), "brands": self.brands}
        return {META_KEY: json.dumps(body, sort_keys=True)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> CategoryBlend | None:
        raw = meta.get(META_KEY)
        if not isinstance(raw, str) or not raw:
            return None
        body = json.loads(raw)
        w = body["weights"]
        return cls(body["table"], body["other"], (float(w[0]), float(w[1]), float(w[2])), int(body["brands"]))


def affinity_table(
    pairs: Sequence[tuple[str, str]], brands: Collection[str], category: Mapping[str, str]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(brand category -> influencer category -> log share, brand category -> log share of an
    unseen category) from the partners of ``brands`` (add-one smoothed over the influencer
    categories seen); a brand category with fewer than MIN_PARTNERS partners gets no row."""
    keep = set(brands)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for b, i in pairs:
        bc = category.get(b, "")
        if b in keep and bc:
            counts[bc][category.get(i, "") or ""] += 1
    seen = sorted({c for cc in counts.values() for c in cc})
    table, other = {}, {}
    for bc, cc in sorted(counts.items()):
        total = sum(cc.values())
        if total < MIN_PARTNERS:
            continue
        denom = total + len(seen) + 1
        table[bc] = {c: float(np.log((cc[c] + 1) / denom)) for c in seen}
        other[bc] = float(np.log(1 / denom))
    return table, other


def blend_brands(
    pairs: Sequence[tuple[str, str]], train: Sequence[str], category: Mapping[str, str], seed: int
) -> list[str]:
    """A seeded BLEND_FRACTION of the training brands with a category and a partner, sorted; none
    when fewer than MIN_BRANDS would be (too few to learn from)."""
    paired = {b for b, _ in pairs}
    ok = sorted(b for b in train if b in paired and category.get(b))
    n = round(BLEND_FRACTION * len(ok))
    if n < MIN_BRANDS:
        return []
    order = np.random.default_rng([seed, 21]).permutation(len(ok))
    return sorted(ok[i] for i in order[:n])


# (brand id, influencer ids) -> the content scores of those influencers for that brand
Content = Callable[[str, Sequence[str]], np.ndarray]


def fit_blend(
    pairs: Sequence[tuple[str, str]],
    train: Collection[str],
    fit: Sequence[str],
    category: Mapping[str, str],
    influencers: Sequence[str],
    content: Content,
    propensity: Callable[[str, Sequence[str]], np.ndarray],
    seed: int = 0,
) -> CategoryBlend | None:
    """The blend: its weights learned on ``fit`` (each brand's whole pool of ``influencers``, its
    partners positive; the category table of the other training brands, so that no brand learns
    from its own partners), its table from every brand in ``train``. None when fewer than
    MIN_BRANDS fit brands have a category the table knows and a partner among ``influencers``.

    propensity: (brand, influencer ids) -> how many distinct handles each tagged or was
    sponsored by, but that brand (``cold_start.propensity_of``, as ``collab_rank.blend`` serves it)."""
    from sklearn.linear_model import LogisticRegression

    fitting = set(fit)
    table, other = affinity_table(pairs, [b for b in train if b not in fitting], category)
    partners: dict[str, set[str]] = defaultdict(set)
    for b, i in pairs:
        partners[b].add(i)
    cats = [category.get(i, "") for i in influencers]
    part = CategoryBlend(table, other, (0.0, 0.0, 0.0), 0)
    xs, ys, used = [], [], 0
    for b in fit:
        bc = category.get(b, "")
        y = np.fromiter((i in partners[b] for i in influencers), bool, count=len(influencers))
        if not part.knows(bc) or not y.any():
            continue
        c = np.asarray(content(b, influencers), np.float64)
        ok = np.isfinite(c)
        x = np.column_stack([c, part.affinity(bc, cats), np.log1p(propensity(b, influencers))])[ok]
        xs.append(x)
        ys.append(y[ok])
        used += 1
    if used < MIN_BRANDS:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(x / scale, y)
    w = model.coef_[0] / scale
    if w[0] <= 0:  # content that counts against a partner: nothing a blend should serve
        return None
    full, full_other = affinity_table(pairs, train, category)
    return CategoryBlend(full, full_other, (float(w[0]), float(w[1]), float(w[2])), used)
