"""Training examples: brand-disjoint splits and per-brand candidate lists.

A pair (brand_id, influencer_id) says the influencer is a true match of the brand.
Splits are over brands: a test brand's pairs are never trained on. Influencers paired
only with held-out brands are held out too (never used as training negatives), so the
training loop sees none of the test positives.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.core.vectors import l2_normalize
from congruence.store.postsets import PostSets

Pair = tuple[str, str]


@dataclass(frozen=True)
class Split:
    train_brands: tuple[str, ...]
    test_brands: tuple[str, ...]


def assert_no_leak(train_brands: Iterable[str], test_brands: Iterable[str]) -> None:
    """Raise ValueError naming every brand id that is both in train and in test."""
    leaked = sorted(set(train_brands) & set(test_brands))
    if leaked:
        raise ValueError(f"brands in both train and test: {', '.join(leaked)}")


def brand_disjoint_split(
    brand_ids: Sequence[str],
    test_fraction: float = 0.2,
    seed: int = 0,
    test_brands: Collection[str] | None = None,
) -> Split:
    """Split distinct ``brand_ids`` into train and test brands (each sorted).

    With ``test_brands`` given, those are the test brands (they must be among
    ``brand_ids``) and the rest train; otherwise a seeded ``test_fraction`` of the brands,
    at least one, and at least one left for training when there are two or more.
    """
    brands = sorted(set(brand_ids))
    if test_brands is not None:
        unknown = sorted(set(test_brands) - set(brands))
        if unknown:
            raise InvalidInput(f"names unknown brand ids: {', '.join(unknown)}", field="test_brands")
        test = set(test_brands)
    else:
        if not 0.0 < test_fraction < 1.0:
            raise InvalidInput(f"must be in (0, 1), got {test_fraction}", field="test_fraction")
        n_test = min(max(1, round(test_fraction * len(brands))), max(1, len(brands) - 1))
        order = np.random.default_rng(seed).permutation(len(brands))
        test = {brands[i] for i in order[:n_test]} if brands else set()
    split = Split(tuple(b for b in brands if b not in test), tuple(b for b in brands if b in test))
    assert_no_leak(split.train_brands, split.test_brands)
    return split


def index_pairs(postsets: PostSets, pairs: Iterable[Pair]) -> list[tuple[int, int]]:
    """(brand_row, influencer_row) per pair; ValueError for an unknown id or a wrong kind."""
    index = postsets.index_of()
    rows: list[tuple[int, int]] = []
    for brand_id, influencer_id in pairs:
        for account_id, kind in ((brand_id, "brand"), (influencer_id, "influencer")):
            if account_id not in index:
                raise ValueError(f"pairs: unknown account id {account_id!r}")
            if postsets.kinds[index[account_id]] != kind:
                raise ValueError(f"pairs: {account_id!r} is not a {kind}")
        rows.append((index[brand_id], index[influencer_id]))
    return rows


def held_out_influencers(pairs: Iterable[Pair], brands: Collection[str]) -> set[str]:
    """Influencers paired with some brand outside ``brands`` and with none inside it."""
    inside: set[str] = set()
    outside: set[str] = set()
    for brand_id, influencer_id in pairs:
        (inside if brand_id in brands else outside).add(influencer_id)
    return outside - inside


def influencer_rows(postsets: PostSets, exclude: Collection[str] = ()) -> np.ndarray:
    """(n,) int64 rows of the influencers of ``postsets`` whose id is not in ``exclude``."""
    skip = set(exclude)
    kinds, ids = postsets.kinds, postsets.account_ids
    rows = [r for r in range(len(ids)) if kinds[r] == "influencer" and ids[r] not in skip]
    return np.asarray(rows, dtype=np.int64)


def category_vocabulary(postsets: PostSets) -> tuple[str, ...]:
    """Sorted distinct non-empty categories of all accounts."""
    return tuple(sorted({c for c in postsets.categories if c}))


@dataclass(frozen=True)
class RankingData:
    """What the training loop samples from; rows index into the ``PostSets``.

    brand_rows: (nb,) training brands with at least one positive.
    positives: nb arrays of the positive influencer rows of each brand.
    influencer_rows: (ni,) the negative pool: influencers not held out.
    category_ids: (n_accounts,) int64 index into ``categories``, -1 when unknown.
    pool_by_category: per category id, the influencer_rows of that category.
    lookalikes: nb arrays: each brand's ``LOOKALIKES`` pool influencers closest to it by
        cosine of mean raw post features, positives left out: the negatives that look like
        the brand (what an untrained search would wrongly put first).
    """

    brand_rows: np.ndarray
    positives: tuple[np.ndarray, ...]
    influencer_rows: np.ndarray
    category_ids: np.ndarray
    categories: tuple[str, ...]
    pool_by_category: tuple[np.ndarray, ...]
    lookalikes: tuple[np.ndarray, ...] = ()


LOOKALIKES = 64


def mean_features(postsets: PostSets, rows: np.ndarray) -> np.ndarray:
    """(len(rows), dim) L2-normalised mean of each account's raw post features (0 if no post)."""
    cumsum = np.cumsum(postsets.features, axis=0, dtype=np.float64)
    cumulative = np.vstack([np.zeros((1, postsets.dim)), cumsum])
    start, end = postsets.offsets[rows], postsets.offsets[rows + 1]
    sums = cumulative[end] - cumulative[start]
    return l2_normalize(sums / np.maximum(end - start, 1)[:, None])


def lookalike_negatives(
    postsets: PostSets,
    brand_rows: np.ndarray,
    positives: Sequence[np.ndarray],
    pool: np.ndarray,
    n: int = LOOKALIKES,
    chunk: int = 256,
) -> tuple[np.ndarray, ...]:
    """Per brand, the ``n`` rows of ``pool`` most like it by pooled raw cosine, not its positives."""
    if pool.size == 0:
        return tuple(pool[:0] for _ in brand_rows)
    xb = mean_features(postsets, pool).astype(np.float32)
    out: list[np.ndarray] = []
    for start in range(0, brand_rows.size, chunk):
        sims = mean_features(postsets, brand_rows[start : start + chunk]).astype(np.float32) @ xb.T
        for j, row in enumerate(sims):
            pos = positives[start + j]
            m = min(pool.size, n + pos.size)
            top = np.argpartition(-row, m - 1)[:m] if m < pool.size else np.arange(pool.size)
            top = top[np.argsort(-row[top], kind="stable")]
            out.append(pool[top][~np.isin(pool[top], pos)][:n])
    return tuple(out)


def build_ranking_data(
    postsets: PostSets,
    pairs: Sequence[Pair],
    train_brands: Collection[str],
    exclude_influencers: Collection[str] = (),
) -> RankingData:
    """Training view of ``postsets``: pairs of ``train_brands`` only, held-out influencers removed.

    exclude_influencers: more influencers to keep out of training entirely (never a
        negative, never seen by the category task), e.g. to measure category accuracy.
    """
    train, excluded = set(train_brands), set(exclude_influencers)
    rows = index_pairs(postsets, pairs)
    by_brand: dict[int, set[int]] = {}
    for (brand_id, _), (b, i) in zip(pairs, rows, strict=True):
        if brand_id in train and postsets.account_ids[i] not in excluded:
            by_brand.setdefault(b, set()).add(i)
    pool = influencer_rows(postsets, exclude=held_out_influencers(pairs, train) | excluded)
    categories = category_vocabulary(postsets)
    lookup = {c: j for j, c in enumerate(categories)}
    category_ids = np.asarray([lookup.get(c, -1) for c in postsets.categories], dtype=np.int64)
    brand_rows = np.asarray(sorted(by_brand), dtype=np.int64)
    positives = tuple(np.asarray(sorted(by_brand[int(b)]), dtype=np.int64) for b in brand_rows)
    return RankingData(
        brand_rows=brand_rows,
        positives=positives,
        influencer_rows=pool,
        category_ids=category_ids,
        categories=categories,
        pool_by_category=tuple(pool[category_ids[pool] == j] for j in range(len(categories))),
        lookalikes=lookalike_negatives(postsets, brand_rows, positives, pool),
    )


@dataclass(frozen=True)
class CandidateLists:
    """B candidate lists of length L: rows (B, L) int64 (0 where padded), labels (B, L)
    float32 (1 for a positive), mask (B, L) bool (False where padded)."""

    rows: np.ndarray
    labels: np.ndarray
    mask: np.ndarray


def _draw(pool: np.ndarray, n: int, exclude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct rows of ``pool`` not in ``exclude``."""
    if n <= 0 or pool.size == 0:
        return pool[:0]
    drawn = rng.choice(pool, size=min(pool.size, n + exclude.size), replace=False)
    return drawn[~np.isin(drawn, exclude)][:n]


def _one_list(
    data: RankingData, b: int, size: int, hard_fraction: float, lookalike_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    positives = data.positives[b]
    n_pos = min(positives.size, max(1, size // 2))
    chosen = rng.choice(positives, size=n_pos, replace=False) if positives.size > n_pos else positives
    n_neg = size - n_pos
    alike = positives[:0]
    if lookalike_fraction > 0 and data.lookalikes:
        alike = _draw(data.lookalikes[b], round(lookalike_fraction * n_neg), positives, rng)
    category = int(data.category_ids[data.brand_rows[b]])
    hard = positives[:0]
    if category >= 0 and hard_fraction > 0:
        n_hard = min(round(hard_fraction * n_neg), n_neg - alike.size)
        hard = _draw(data.pool_by_category[category], n_hard, np.concatenate([positives, alike]), rng)
    taken = np.concatenate([positives, alike, hard])
    easy = _draw(data.influencer_rows, n_neg - hard.size - alike.size, taken, rng)
    return np.concatenate([chosen, alike, hard, easy]).astype(np.int64)


def sample_candidate_lists(
    data: RankingData,
    brands: np.ndarray,
    list_size: int,
    hard_negative_fraction: float,
    rng: np.random.Generator,
    lookalike_fraction: float = 0.0,
) -> CandidateLists:
    """For each index in ``brands`` (into ``data.brand_rows``): positives first, then negatives.

    At most half the list (at least one) are positives, sampled when there are more;
    ``lookalike_fraction`` of the negatives come from the brand's look-alikes
    (``RankingData.lookalikes``), ``hard_negative_fraction`` from the brand's own category
    (when known and available), the rest from the whole pool. Lists run short (masked) when
    the pool is too small.
    """
    lists = [_one_list(data, int(b), list_size, hard_negative_fraction, lookalike_fraction, rng) for b in brands]
    rows = np.zeros((len(lists), list_size), dtype=np.int64)
    labels = np.zeros((len(lists), list_size), dtype=np.float32)
    mask = np.zeros((len(lists), list_size), dtype=bool)
    for i, (b, cand) in enumerate(zip(brands, lists, strict=True)):
        rows[i, : cand.size] = cand
        mask[i, : cand.size] = True
        labels[i, : cand.size] = np.isin(cand, data.positives[int(b)])
    return CandidateLists(rows=rows, labels=labels, mask=mask)
