"""Posts of the photo benchmark: which class each post shows, which photo variant, which caption.

An influencer's post shows its niche, another class of its vertical, or (off-topic) a class
of another vertical; a brand's posts cycle through the classes it prefers. The photo is a
seeded pick among the photos of the account's side (train or test split) and one of its
augmented variants, so the same image file appears in many accounts' posts, as reposts
and stock photos do; every post records its source photo and variant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from congruence.datasets.photo_design import BrandPlan, Catalog, InfluencerPlan

BRAND_TEMPLATES = (
    "Introducing our new {name} collection",
    "The {name} you have been waiting for. Shop now #{tag}",
    "{Name}, made for you #{tag}",
    "Behind the scenes: {name} #{tag} #newin",
    "Our {name} range is back in stock",
    "Meet the {name}. Link in bio #{tag}",
)
INFLUENCER_TEMPLATES = (
    "my {name} today",
    "Weekend with the {name} #{tag}",
    "can't get enough of this {name} \U0001f60d",
    "{name} vibes #{tag} #weekend",
    "Throwback: {name} #{tag}",
    "Look at this {name}!",
    "Another day, another {name} #{tag} #dailylife",
)
GENERIC = (
    "good morning \u2600\ufe0f",
    "weekend mood",
    "new post, link in bio",
    "#tbt",
    "thank you all for 10k!",
    "Monday motivation",
    "Happy Friday everyone",
)
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PostStyle:
    """Post mix and captions. Influencer posts: niche with p_niche, another class of the
    vertical with p_vertical, off-topic otherwise. Captions: templated from the class name
    with p_named, empty with p_empty, a generic line otherwise."""

    influencer_posts: tuple[int, int] = (6, 10)
    brand_posts: tuple[int, int] = (5, 8)
    p_niche: float = 0.55
    p_vertical: float = 0.25
    p_named: float = 0.65
    p_empty: float = 0.15


@dataclass(frozen=True)
class PostPlan:
    """One post; ``photo`` is relative to the photos folder, ``variant`` its augmentation."""

    id: str
    account_id: str
    label: str
    photo: str
    variant: int
    caption: str
    likes: int
    comments: int
    ts: datetime


def class_name(label: str) -> str:
    """'golden_retriever' -> 'golden retriever'."""
    return label.replace("_", " ")


def caption(label: str, brand: bool, style: PostStyle, rng: random.Random) -> str:
    u = rng.random()
    if u < style.p_empty:
        return ""
    if u >= style.p_empty + style.p_named:
        return rng.choice(GENERIC)
    name = class_name(label)
    template = rng.choice(BRAND_TEMPLATES if brand else INFLUENCER_TEMPLATES)
    tag = name.replace(" ", "").replace("-", "").lower()
    return template.format(name=name, Name=name[:1].upper() + name[1:], tag=tag)


def influencer_labels(catalog: Catalog, inf: InfluencerPlan, n: int, style: PostStyle, rng: random.Random) -> list[str]:
    """The classes of ``n`` posts of ``inf``: its niche first, then the seeded mix."""
    others = [c for c in catalog.classes[inf.vertical] if c != inf.niche]
    off = [v for v in catalog.verticals if v != inf.vertical]
    labels = [inf.niche]
    for _ in range(n - 1):
        u = rng.random()
        if u < style.p_niche:
            labels.append(inf.niche)
        elif u < style.p_niche + style.p_vertical:
            labels.append(rng.choice(others))
        else:
            labels.append(rng.choice(catalog.classes[rng.choice(off)]))
    return labels


def brand_labels(brand: BrandPlan, n: int, rng: random.Random) -> list[str]:
    """Every preferred class at least once (when n allows), the rest drawn among them."""
    cycle = list(brand.prefers)
    rng.shuffle(cycle)
    return [cycle[i] if i < len(cycle) else rng.choice(cycle) for i in range(n)]


def account_posts(
    account_id: str,
    labels: Sequence[str],
    split: str,
    variants: int,
    brand: bool,
    followers: int,
    catalog: Catalog,
    style: PostStyle,
    rng: random.Random,
) -> list[PostPlan]:
    """One post per class of ``labels``, in order: a photo of ``split``, a variant, a caption,
    likes and a time, all drawn from ``rng`` (the account's own stream)."""
    out = []
    for n, label in enumerate(labels):
        likes = int(followers * rng.uniform(0.01, 0.08))
        out.append(
            PostPlan(
                id=f"{account_id}_p{n}",
                account_id=account_id,
                label=label,
                photo=rng.choice(catalog.photos[(label, split)]),
                variant=rng.randrange(variants),
                caption=caption(label, brand, style, rng),
                likes=likes,
                comments=int(likes * rng.uniform(0.005, 0.05)),
                ts=EPOCH + timedelta(minutes=rng.randrange(60 * 24 * 540)),
            )
        )
    return out


def influencer_posts(
    catalog: Catalog, inf: InfluencerPlan, followers: int, variants: int, style: PostStyle, seed: int
) -> list[PostPlan]:
    rng = random.Random(f"posts:{inf.id}:{seed}")
    labels = influencer_labels(catalog, inf, rng.randint(*style.influencer_posts), style, rng)
    return account_posts(inf.id, labels, inf.side, variants, False, followers, catalog, style, rng)


def brand_posts(
    catalog: Catalog, brand: BrandPlan, followers: int, variants: int, style: PostStyle, seed: int
) -> list[PostPlan]:
    rng = random.Random(f"posts:{brand.id}:{seed}")
    labels = brand_labels(brand, rng.randint(*style.brand_posts), rng)
    return account_posts(brand.id, labels, brand.side, variants, True, followers, catalog, style, rng)
