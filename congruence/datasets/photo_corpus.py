"""A brand -> influencer ranking benchmark built from ../shared/data/photos.

``build_photo_corpus(photos_dir, out, config)`` writes a corpus folder in the README's
format (accounts.jsonl, posts.jsonl, matches.jsonl, images/) plus ``test_brands.txt``
(the held-out brands, one id a line) and ``corpus_info.json`` (sizes and design).
Deterministic for a given config: same seed, same bytes. ``write_photo_corpus`` writes any
planned ``PhotoWorld``; photo_fine's fine-grained kind is written by it too.

Design (details in photo_design and photo_posts): 20 brand kinds, a direct and a cross
kind per vertical, ``brands_per_kind`` brands each of which ``test_brands_per_kind`` are
held out. Brand-disjoint and image-disjoint: the train side (training brands and the
influencers they match) uses only split=train photos, the test side only split=test
photos, and an influencer only matches brands of its own side, so the held-out
influencers the training code sets aside are exactly the test side. A brand's category
is its market (the target vertical), an influencer's its vertical.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from congruence.datasets.photo_augment import variant_path, write_variant
from congruence.datasets.photo_design import (
    BrandPlan,
    Catalog,
    InfluencerPlan,
    Roles,
    assign_roles,
    ground_truth,
    load_catalog,
    plan_brands,
    plan_influencers,
)
from congruence.datasets.photo_posts import PostPlan, PostStyle, brand_posts, influencer_posts
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.store.rows import Account, Match

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoCorpusConfig:
    """Sizes. Unique images are at most 1000 * train_variants + 100 * test_variants (the
    product encodes about 25 images/s on 2 CPU cores)."""

    brands_per_kind: int = 10
    test_brands_per_kind: int = 2
    train_influencers: int = 2000
    test_influencers: int = 700
    train_variants: int = 3
    # only one test photo per class: more variants give the test side some variety
    test_variants: int = 5
    n_product: int = 3
    image_side: int = 224
    style: PostStyle = field(default_factory=PostStyle)
    seed: int = 0

    @classmethod
    def quick(cls) -> PhotoCorpusConfig:
        """A tiny corpus for tests: 60 brands, 280 influencers, 3-4 posts each (enough that every
        niche a brand targets or a look-alike posts has influencers on both sides)."""
        return cls(
            brands_per_kind=2,
            test_brands_per_kind=1,
            train_influencers=160,
            test_influencers=120,
            train_variants=2,
            test_variants=2,
            image_side=96,
            style=PostStyle(influencer_posts=(3, 4), brand_posts=(3, 3)),
        )


@dataclass(frozen=True)
class PhotoCorpusInfo:
    folder: Path
    brands: dict[str, int]  # per side
    influencers: dict[str, int]  # per side
    posts: int
    images: int  # distinct image files
    source_photos: int  # distinct photos they come from
    posts_reusing_image: int  # posts whose image file is also in another post
    pairs: int
    test_positives: dict[str, float]  # min, median, max positives of a test brand
    kinds: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["folder"] = str(self.folder)
        return d


def _followers(rng: random.Random, lo: float, hi: float) -> int:
    return int(10 ** rng.uniform(np.log10(lo), np.log10(hi)))


def _accounts(brands: list[BrandPlan], influencers: list[InfluencerPlan], seed: int) -> list[Account]:
    rng = random.Random(f"accounts:{seed}")
    out: list[Account] = []
    for b in brands:
        out.append(
            Account(
                b.id,
                "brand",
                b.id.removeprefix("b_"),
                b.kind.target,
                _followers(rng, 50_000, 2_000_000),
                extra={
                    "side": b.side,
                    "brand_kind": b.kind.name,
                    "posts_vertical": b.kind.posts,
                    "prefers": list(b.prefers),
                    "targets": list(b.targets),
                },
            )
        )
    for i in influencers:
        out.append(
            Account(
                i.id,
                "influencer",
                f"{i.niche.lower()}_{i.id[-5:]}",
                i.vertical,
                _followers(rng, 5_000, 100_000),
                extra={"side": i.side, "niche": i.niche},
            )
        )
    return out


InfluencerPosts = Callable[[Catalog, InfluencerPlan, int, int, PostStyle, int], list[PostPlan]]


@dataclass(frozen=True)
class PhotoWorld:
    """A planned photo corpus, ready to write: its accounts, how their posts are drawn
    (``variants`` per side, ``style``, ``influencer_posts``: an influencer's posts), the image
    size, the seed, and the ``design`` that corpus_info.json records."""

    catalog: Catalog
    brands: tuple[BrandPlan, ...]
    influencers: tuple[InfluencerPlan, ...]
    variants: Mapping[str, int]
    style: PostStyle
    image_side: int
    seed: int
    design: Mapping[str, Any]
    influencer_posts: InfluencerPosts = influencer_posts


def _post_plans(world: PhotoWorld, accounts: list[Account]) -> list[tuple[str, PostPlan]]:
    """(side, post) for every account, brands first."""
    followers = {a.id: a.followers or 0 for a in accounts}
    variants, style, seed = world.variants, world.style, world.seed
    out: list[tuple[str, PostPlan]] = []
    for b in world.brands:
        out += [(b.side, p) for p in brand_posts(world.catalog, b, followers[b.id], variants[b.side], style, seed)]
    for i in world.influencers:
        out += [
            (i.side, p)
            for p in world.influencer_posts(world.catalog, i, followers[i.id], variants[i.side], style, seed)
        ]
    return out


def _post(out: Path, side: str, p: PostPlan) -> Post:
    return Post(
        p.id,
        p.account_id,
        out / variant_path(p.photo, p.variant, side),
        p.caption,
        p.likes,
        p.comments,
        p.ts,
        extra={"source_photo": p.photo, "augmentation": p.variant, "label": p.label, "side": side},
    )


def _write_images(photos_dir: Path, posts: list[Post], image_side: int, seed: int) -> int:
    """Render every image file the posts use (skipping files already there); returns how many."""
    wanted = sorted({(p.image, p.extra["source_photo"], p.extra["augmentation"]) for p in posts if p.image})
    for target, photo, variant in wanted:
        if not target.exists():
            write_variant(photos_dir, photo, variant, target, image_side, seed)
    return len(wanted)


def _info(
    out: Path,
    brands: list[BrandPlan],
    influencers: list[InfluencerPlan],
    posts: list[Post],
    pairs: list[tuple[str, str]],
    n_images: int,
) -> PhotoCorpusInfo:
    uses = Counter(p.image for p in posts)
    test_ids = {b.id for b in brands if b.side == "test"}
    per_test = Counter(b for b, _ in pairs if b in test_ids)
    counts = [per_test.get(b, 0) for b in sorted(test_ids)]
    return PhotoCorpusInfo(
        folder=out,
        brands=dict(Counter(b.side for b in brands)),
        influencers=dict(Counter(i.side for i in influencers)),
        posts=len(posts),
        images=n_images,
        source_photos=len({p.extra["source_photo"] for p in posts}),
        posts_reusing_image=sum(1 for p in posts if uses[p.image] > 1),
        pairs=len(pairs),
        test_positives={"min": float(min(counts)), "median": float(np.median(counts)), "max": float(max(counts))},
        kinds=tuple(dict.fromkeys(b.kind.name for b in brands)),
    )


def _design_doc(roles: Roles, config: PhotoCorpusConfig) -> dict[str, Any]:
    return {
        "core": dict(roles.core),
        "product": dict(roles.product),
        "class_map": dict(roles.class_map),
        "lookalike": dict(roles.lookalike),
        "lookalike_map": dict(roles.lookalike_map),
        "config": asdict(config),
    }


def write_photo_corpus(photos_dir: Path, out: Path, world: PhotoWorld) -> PhotoCorpusInfo:
    """Write ``world`` to ``out`` (created; existing image files are reused): the corpus files,
    the images, ``test_brands.txt`` and ``corpus_info.json``; returns its description."""
    pairs = ground_truth(world.brands, world.influencers)
    accounts = _accounts(list(world.brands), list(world.influencers), world.seed)
    posts = [_post(out, side, p) for side, p in _post_plans(world, accounts)]
    n_images = _write_images(photos_dir, posts, world.image_side, world.seed)
    write_corpus(Corpus(out, accounts, posts, [Match(b, i) for b, i in pairs]))
    brands = list(world.brands)
    (out / "test_brands.txt").write_text("".join(f"{b.id}\n" for b in brands if b.side == "test"), encoding="utf-8")
    info = _info(out, brands, list(world.influencers), posts, pairs, n_images)
    doc = {**info.to_dict(), "design": dict(world.design)}
    (out / "corpus_info.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    logger.info("photo corpus in %s: %s", out, info)
    return info


def build_photo_corpus(photos_dir: Path, out: Path, config: PhotoCorpusConfig = PhotoCorpusConfig()) -> PhotoCorpusInfo:
    """Write the corpus to ``out`` (created; existing image files are reused) and describe it."""
    catalog = load_catalog(photos_dir)
    roles = assign_roles(catalog, config.n_product, config.seed)
    brands = plan_brands(catalog, roles, config.brands_per_kind, config.test_brands_per_kind, config.seed)
    influencers = tuple(
        i
        for side, n in (("train", config.train_influencers), ("test", config.test_influencers))
        for i in plan_influencers(catalog, brands, side, n, config.seed)
    )
    variants = {"train": config.train_variants, "test": config.test_variants}
    design = _design_doc(roles, config)
    world = PhotoWorld(catalog, brands, influencers, variants, config.style, config.image_side, config.seed, design)
    return write_photo_corpus(photos_dir, out, world)
