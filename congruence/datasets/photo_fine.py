"""The fine-grained kind of the photo benchmark (issue 36): which creators *within* a vertical.

``build_fine_corpus(photos_dir, out, config)`` writes a corpus folder like photo_corpus's
(through its writer, ``write_photo_corpus``: same files, same train/test sides and image
split) plus ``test_influencers.txt``. Deterministic for a given config: same seed, same bytes.

Design (defaults: 60 brands, 20 held out; 300 influencers, 200 of them held out):

- An influencer has one *dominant* class of its vertical (``style.p_niche`` of its posts,
  0.6); its other posts show other classes of the same vertical.
- A brand posts ``favourites`` (3) classes of its own vertical A and partners with vertical
  B: the influencers of B whose dominant class is the image of a favourite under the class
  map of (A, B). Each vertical's classes are split in two seeded halves. *Same* brands
  favour classes of A's same half and have B = A and the identity map; *cross* brands favour
  classes of A's cross half and have B = CROSS_TARGET[A] (photo_design's derangement) and a
  seeded one-to-one map from that half into the classes of B. So what a brand posts decides
  whom it partners with (were both kinds to favour any class of A, a held-out brand's
  partner vertical could not be told from its posts: a ranking that knew the class map
  perfectly would still reach only R@10 0.74 on seed 1). Every brand of a pair uses the
  same map, and
  a held-out brand favours only classes that a training brand of its pair favours and whose
  image a training influencer has as dominant class, so the map is learnable from the
  training side.
- Half the brands are same, half cross (``brands_per_kind`` of each kind per vertical): the
  same brands are where cosine is right and a head that only learns the vertical is not,
  the cross brands where cosine misses the vertical.
- The held-out side has 20 influencers per vertical (about 2 per class), the training
  side 10: with 10 per vertical, a ranking that knows only the partner vertical puts all
  of it in its first 10 and scores R@10 = 1, so R@10 would not ask which creators.
- A brand's category is its partner vertical and an influencer's its vertical, so the
  ranking metrics' cAUC (AUC within the brand's category) is the AUC within the partner
  vertical: whether the ranking finds the right creators among that vertical's.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from congruence.datasets.photo_corpus import PhotoCorpusInfo, PhotoWorld, write_photo_corpus
from congruence.datasets.photo_design import (
    CROSS_TARGET,
    BrandKind,
    BrandPlan,
    Catalog,
    InfluencerPlan,
    load_catalog,
)
from congruence.datasets.photo_posts import PostPlan, PostStyle, account_posts

ClassMaps = Mapping[tuple[str, str], Mapping[str, str]]


def _fine_style() -> PostStyle:
    # p_niche is the dominant share; the rest of an influencer's posts stay in its vertical
    return PostStyle(p_niche=0.6, p_vertical=0.4)


@dataclass(frozen=True)
class FineCorpusConfig:
    """Sizes: ``brands_per_kind`` brands of each of the 20 kinds (a same and a cross kind per
    vertical), the first ``test_brands_per_kind`` of each held out."""

    brands_per_kind: int = 3
    test_brands_per_kind: int = 1
    favourites: int = 3
    train_influencers: int = 100
    test_influencers: int = 200
    train_variants: int = 3
    test_variants: int = 5
    image_side: int = 224
    style: PostStyle = field(default_factory=_fine_style)
    seed: int = 0

    @classmethod
    def quick(cls) -> FineCorpusConfig:
        """40 brands (20 held out), 120 influencers, 3-4 posts each: a few seconds of ingest."""
        return cls(
            brands_per_kind=2,
            train_influencers=60,
            test_influencers=60,
            train_variants=2,
            test_variants=2,
            image_side=96,
            style=PostStyle(influencer_posts=(3, 4), brand_posts=(3, 3), p_niche=0.6, p_vertical=0.4),
        )


def class_maps(catalog: Catalog, seed: int) -> dict[tuple[str, str], dict[str, str]]:
    """(A, B) -> class of A -> class of B. Each vertical's classes are split, seeded, into a
    *same* half and a *cross* half: (A, A) is the identity on A's same half, (A, CROSS_TARGET[A])
    a seeded one-to-one map from A's cross half into the classes of B. Which classes a brand
    posts thus tells which vertical it partners with, as the photo kinds' product and core
    classes do: a brand's partners are a function of what it posts."""
    rng = random.Random(f"fine-maps:{seed}")
    maps: dict[tuple[str, str], dict[str, str]] = {}
    for a in catalog.verticals:
        shuffled = rng.sample(catalog.classes[a], len(catalog.classes[a]))
        half = len(shuffled) // 2
        same, cross = sorted(shuffled[:half]), shuffled[half:]
        maps[(a, a)] = {c: c for c in same}
        b = CROSS_TARGET[a]
        n = min(len(cross), len(catalog.classes[b]))
        pairs = zip(cross[:n], rng.sample(catalog.classes[b], n), strict=True)
        maps[(a, b)] = dict(sorted(pairs))
    return maps


def fine_kinds(catalog: Catalog) -> tuple[BrandKind, ...]:
    same = [BrandKind(f"same:{v}", v, v) for v in catalog.verticals]
    cross = [BrandKind(f"cross:{v}>{CROSS_TARGET[v]}", v, CROSS_TARGET[v]) for v in catalog.verticals]
    return tuple(same + cross)


def _learnable(
    kind: BrandKind, m: Mapping[str, str], shown: Sequence[BrandPlan], infs: Sequence[InfluencerPlan]
) -> list[str]:
    """Classes whose map is shown on the training side: a training brand of ``kind`` favours
    the class and a training influencer of the partner vertical has its image as dominant."""
    niches = {i.niche for i in infs if i.vertical == kind.target}
    return sorted({c for b in shown if b.kind == kind for c in b.prefers if m[c] in niches})


def plan_fine_brands(
    catalog: Catalog,
    maps: ClassMaps,
    config: FineCorpusConfig,
    side: str,
    shown: Sequence[BrandPlan] = (),
    shown_influencers: Sequence[InfluencerPlan] = (),
) -> tuple[BrandPlan, ...]:
    """The brands of ``side`` of every kind: ``brands_per_kind - test_brands_per_kind`` training
    brands, numbered after the ``test_brands_per_kind`` held-out ones. A held-out brand favours
    only classes whose map the training side shows (``shown``, ``shown_influencers``)."""
    per, test = config.brands_per_kind, config.test_brands_per_kind
    if not 1 <= test < per:
        raise ValueError(f"test_brands_per_kind: expected 1 to {per - 1}, got {test}")
    rng = random.Random(f"fine-brands:{side}:{config.seed}")
    out: list[BrandPlan] = []
    for kind in fine_kinds(catalog):
        m = maps[(kind.posts, kind.target)]
        pool = sorted(m) if side == "train" else _learnable(kind, m, shown, shown_influencers)
        if config.favourites > len(pool):
            raise ValueError(f"{kind.name}: {len(pool)} classes to favour on the {side} side, need {config.favourites}")
        slug = kind.name.replace(":", "_").replace(">", "_to_")
        for j in range(test, per) if side == "train" else range(test):
            prefers = tuple(sorted(rng.sample(pool, config.favourites)))
            targets = tuple(sorted({m[c] for c in prefers}))
            out.append(BrandPlan(f"b_fine_{slug}_{j:02d}", kind, side, prefers, targets))
    return tuple(out)


def plan_fine_influencers(
    catalog: Catalog, brands: Sequence[BrandPlan], side: str, n: int, seed: int
) -> tuple[InfluencerPlan, ...]:
    """``n`` influencers of ``side``, spread evenly over the verticals. Dominant classes are
    dealt from a reshuffled deck of the vertical's classes, those that brands of ``side``
    target first, so that every targeted class has influencers even in a small corpus and
    the other classes give the partner vertical its non-partners."""
    rng = random.Random(f"fine-influencers:{side}:{seed}")
    targeted: dict[str, set[str]] = {v: set() for v in catalog.verticals}
    for b in brands:
        if b.side == side:
            targeted[b.kind.target].update(b.targets)
    decks: dict[str, list[str]] = {v: [] for v in catalog.verticals}
    out = []
    for i in range(n):
        v = catalog.verticals[i % len(catalog.verticals)]
        if not decks[v]:
            first = sorted(targeted[v])
            rest = sorted(set(catalog.classes[v]) - targeted[v])
            decks[v] = rng.sample(rest, len(rest)) + rng.sample(first, len(first))  # popped from the end
        out.append(InfluencerPlan(f"i_fine_{side}_{i:05d}", side, v, decks[v].pop()))
    return tuple(out)


def plan_fine_accounts(
    catalog: Catalog, maps: ClassMaps, config: FineCorpusConfig
) -> tuple[tuple[BrandPlan, ...], tuple[InfluencerPlan, ...]]:
    """Brands and influencers of both sides: the training side first, since what it shows
    decides what the held-out brands may favour."""
    brands = plan_fine_brands(catalog, maps, config, "train")
    infs = plan_fine_influencers(catalog, brands, "train", config.train_influencers, config.seed)
    held = plan_fine_brands(catalog, maps, config, "test", brands, infs)
    infs += plan_fine_influencers(catalog, held, "test", config.test_influencers, config.seed)
    return tuple(sorted(brands + held, key=lambda b: b.id)), infs


def dominant_labels(catalog: Catalog, inf: InfluencerPlan, n: int, share: float, rng: random.Random) -> list[str]:
    """``n`` post classes: round(share * n) (at least 1) of the dominant class, the others drawn
    among the other classes of its vertical, in a seeded order."""
    others = [c for c in catalog.classes[inf.vertical] if c != inf.niche]
    k = max(1, round(share * n))
    labels = [inf.niche] * k + [rng.choice(others) for _ in range(n - k)]
    rng.shuffle(labels)
    return labels


def fine_influencer_posts(
    catalog: Catalog, inf: InfluencerPlan, followers: int, variants: int, style: PostStyle, seed: int
) -> list[PostPlan]:
    """An influencer's posts: ``style.p_niche`` of them of its dominant class (photo_posts'
    ``influencer_posts`` with no off-topic posts and an exact share)."""
    rng = random.Random(f"fine-posts:{inf.id}:{seed}")
    labels = dominant_labels(catalog, inf, rng.randint(*style.influencer_posts), style.p_niche, rng)
    return account_posts(inf.id, labels, inf.side, variants, False, followers, catalog, style, rng)


def _design(maps: ClassMaps, config: FineCorpusConfig) -> dict[str, Any]:
    return {
        "kind": "fine",
        "class_maps": {f"{a}>{b}": dict(m) for (a, b), m in maps.items() if a != b},
        "config": asdict(config),
    }


def build_fine_corpus(photos_dir: Path, out: Path, config: FineCorpusConfig = FineCorpusConfig()) -> PhotoCorpusInfo:
    """Write the fine-grained corpus to ``out`` (created; existing image files are reused),
    with ``test_brands.txt`` and ``test_influencers.txt`` (the test side), and describe it."""
    catalog = load_catalog(photos_dir)
    maps = class_maps(catalog, config.seed)
    brands, influencers = plan_fine_accounts(catalog, maps, config)
    world = PhotoWorld(
        catalog,
        brands,
        influencers,
        {"train": config.train_variants, "test": config.test_variants},
        config.style,
        config.image_side,
        config.seed,
        _design(maps, config),
        fine_influencer_posts,
    )
    info = write_photo_corpus(photos_dir, out, world)
    held = "".join(f"{i.id}\n" for i in influencers if i.side == "test")
    (out / "test_influencers.txt").write_text(held, encoding="utf-8")
    return info
