"""A small synthetic corpus: Pillow-drawn images per category and templated captions.

Needs nothing downloaded. Each category has its own palette, shapes and vocabulary, so
brands and influencers of one category look and read alike. Likes are a share of the
account's followers that follows each image's brightness (``likes``), so an engagement
model trained on the demo has something to learn and engagement rates look like real ones.

Two kinds of brand: each category's ``direct_brands`` *direct* brands (brand_peakfit,
brand_peakfit_2...) post what the category's creators post and partner with some of them,
which plain similarity finds; its ``partner_brands`` *goods* brands post product shots in
the category's palette but partner with creators of another category (PARTNERS: a
running-gear maker working with food creators), which cosine ranks last and a trained head
learns from the other goods brands.

Creators tag the brands of their taste in their posts, some as paid partnerships
(``demo_tags``): a brand's known partners and more, so the demo shows who worked with whom and
learns to rank with it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from congruence.datasets.demo_history import write_history
from congruence.datasets.demo_tags import OUTSIDE, tag_plan, tag_posts
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.store.rows import Account, Match


@dataclass(frozen=True)
class Style:
    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    accent: tuple[int, int, int]
    shape: str
    words: tuple[str, ...]


STYLES: dict[str, Style] = {
    "fitness": Style(
        (250, 120, 40),
        (60, 60, 70),
        (255, 230, 0),
        "circle",
        ("running", "workout", "gym", "marathon", "sneakers", "training"),
    ),
    "food": Style(
        (255, 236, 179),
        (150, 90, 40),
        (210, 40, 40),
        "plate",
        ("pasta", "recipe", "brunch", "bakery", "coffee", "dinner"),
    ),
    "travel": Style(
        (90, 170, 235),
        (40, 140, 70),
        (245, 245, 245),
        "mountain",
        ("beach", "mountains", "hiking", "roadtrip", "island", "sunset"),
    ),
    "pets": Style(
        (200, 170, 120), (110, 80, 50), (60, 40, 30), "blob", ("puppy", "kitten", "dog", "cat", "pet food", "walkies")
    ),
    "fashion": Style(
        (240, 170, 210),
        (120, 40, 110),
        (30, 30, 30),
        "stripes",
        ("outfit", "dress", "streetwear", "handbag", "style", "runway"),
    ),
    "tech": Style(
        (40, 50, 70),
        (20, 220, 230),
        (180, 180, 190),
        "grid",
        ("laptop", "gadget", "smartphone", "coding", "setup", "headphones"),
    ),
}
BRANDS = {
    "fitness": "peakfit",
    "food": "nonna_kitchen",
    "travel": "wanderly",
    "pets": "happy_paws",
    "fashion": "atelier_rose",
    "tech": "circuitry",
}
# goods brands: the category whose palette their product shots have -> whose creators they partner with
PARTNERS = {
    "fitness": "food",
    "food": "travel",
    "travel": "fashion",
    "pets": "fitness",
    "fashion": "tech",
    "tech": "pets",
}
HELD_OUT = ("food", "travel", "pets")  # the categories whose last brands the demo holds out of training
GOODS_WORDS = ("new in", "shop the drop", "limited edition", "now in store")


def draw(category: str, rng: random.Random, size: int = 224, product: bool = False) -> Image.Image:
    """A picture in the category's palette: its scene, or (``product``) a product shot."""
    s = STYLES[category]

    def jitter(c: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(0, min(255, v + rng.randint(-25, 25))) for v in c)

    img = Image.new("RGB", (size, size), jitter(s.sky))
    d = ImageDraw.Draw(img)
    horizon = rng.randint(size // 2, 3 * size // 4)
    d.rectangle([0, horizon, size, size], fill=jitter(s.ground))
    if product:  # a bottle on a plinth, in the accent colour
        x, w = rng.randint(size // 3, 2 * size // 3), rng.randint(size // 8, size // 5)
        d.rectangle([x - 2 * w, horizon - 6, x + 2 * w, horizon + 10], fill=(235, 235, 235))
        d.rectangle([x - w, horizon - 4 * w, x + w, horizon - 6], fill=jitter(s.accent), outline=(0, 0, 0), width=3)
        d.rectangle([x - w // 3, horizon - 5 * w, x + w // 3, horizon - 4 * w], fill=(20, 20, 20))
        return img.filter(ImageFilter.GaussianBlur(0.6))
    for _ in range(rng.randint(2, 4)):
        x, y, r = rng.randint(20, size - 20), rng.randint(20, size - 20), rng.randint(14, 40)
        color = jitter(s.accent)
        if s.shape == "circle":
            d.ellipse([x - r, y - r, x + r, y + r], fill=color, outline=(0, 0, 0), width=3)
        elif s.shape == "plate":
            d.ellipse([x - r, y - r // 2, x + r, y + r // 2], fill=(250, 250, 250))
            d.ellipse([x - r // 2, y - r // 4, x + r // 2, y + r // 4], fill=color)
        elif s.shape == "mountain":
            d.polygon([(x - 2 * r, horizon), (x, horizon - 3 * r), (x + 2 * r, horizon)], fill=jitter((90, 90, 100)))
            d.polygon([(x - r // 2, horizon - 2 * r), (x, horizon - 3 * r), (x + r // 2, horizon - 2 * r)], fill=color)
        elif s.shape == "blob":
            d.ellipse([x - r, y - r // 2, x + r, y + r], fill=color)
            d.ellipse([x - r // 2, y - r, x + r // 2, y], fill=color)
        elif s.shape == "stripes":
            for k in range(0, size, 16):
                d.line([(k + x % 16, 0), (k + x % 16 - 60, size)], fill=color, width=4)
        else:
            for k in range(0, size, 24):
                d.line([(k, 0), (k, size)], fill=color, width=1)
                d.line([(0, k), (size, k)], fill=color, width=1)
            d.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=(20, 20, 25), outline=color, width=2)
    return img.filter(ImageFilter.GaussianBlur(0.6))


def caption(category: str, rng: random.Random, product: bool = False) -> str:
    w = STYLES[category].words
    a, b = rng.sample(w, 2)
    if product:
        return f"{rng.choice(GOODS_WORDS).capitalize()}: our {a} collection #{b.replace(' ', '')}"
    templates = [
        "Loving this {a} today #{b}",
        "New {a} post, all about {b}!",
        "{a} and {b} vibes",
        "Weekend {a} with friends #{b}",
        "My favourite {a} #{b} #{a}",
    ]
    return rng.choice(templates).format(a=a, b=b.replace(" ", ""))


LIKE_RATE = 0.02  # likes per follower of a post of mean brightness 0.5


def likes(img: Image.Image, draw_50_5000: int, followers: int) -> int:
    """Likes that a model can learn from the picture: ``LIKE_RATE`` of the followers, more for
    brighter images (e^(6 x (mean brightness in 0..1 - 0.5)): about twice for the typical
    spread within one demo account), times ±10 % noise from the draw."""
    brightness = float(np.asarray(img.convert("L"), dtype=np.float32).mean()) / 255.0
    noise = 0.9 + 0.2 * (draw_50_5000 - 50) / 4950
    return round(followers * LIKE_RATE * math.exp(6.0 * (brightness - 0.5)) * noise)


@dataclass
class _Corpus:
    """The rows being built, and the one random stream every draw comes from, in order."""

    out: Path
    rng: random.Random
    accounts: list[Account] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)

    def post(self, acc: Account, cat: str, n: int, product: bool = False) -> None:
        rng, pid = self.rng, f"{acc.id}_p{n}"
        img = draw(cat, rng, product=product)
        img.save(self.out / "images" / f"{pid}.jpg", quality=88)
        self.posts.append(
            Post(
                id=pid,
                account_id=acc.id,
                image=self.out / "images" / f"{pid}.jpg",
                caption=caption(cat, rng, product),
                likes=likes(img, rng.randint(50, 5000), acc.followers or 0),
                comments=rng.randint(0, 200),
                ts=datetime(2026, rng.randint(1, 9), 10 + rng.randint(0, 9), 12, tzinfo=UTC),
            )
        )

    def brand(self, account: Account, posts_of: str, n_posts: int, partners: list[str], product: bool = False) -> None:
        self.accounts.append(account)
        for n in range(n_posts):
            self.post(account, posts_of, n, product)
        self.matches += [Match(account.id, i) for i in partners]


def build_demo(
    out: Path,
    influencers_per_category: int = 10,
    posts_per_influencer: int = 5,
    posts_per_brand: int = 4,
    seed: int = 7,
    partner_brands: int = 2,
    direct_brands: int = 2,
    collaborations: bool = True,
    history: bool = False,
) -> Path:
    """Write a demo corpus folder (accounts.jsonl, posts.jsonl, matches.jsonl, images/):
    per category ``direct_brands`` direct brands (at least 1), ``influencers_per_category``
    creators and ``partner_brands`` goods brands (see the module doc). ``collaborations``: the
    creators tag brands in their posts (``demo_tags``); without, no post tags anyone, and the
    rest of the corpus is the same. ``history``: also the accounts' counts of the two months
    before (``demo_history``: ``history/<date>/accounts.jsonl``, for ``congruence demo``)."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    c = _Corpus(out, random.Random(seed))
    cats = list(STYLES)

    def creators(cat: str, rest: int) -> list[str]:
        return [f"{cat}_creator_{i:02d}" for i in range(influencers_per_category) if i % 3 == rest]

    for cat in cats:
        c.brand(Account(f"brand_{BRANDS[cat]}", "brand", BRANDS[cat], cat, 250_000), cat, posts_per_brand, [])
        for i in range(influencers_per_category):
            followers = int(10 ** c.rng.uniform(3.3, 5.4))
            handle = f"{cat}.{c.rng.choice(STYLES[cat].words).replace(' ', '')}{i}"
            creator = Account(f"{cat}_creator_{i:02d}", "influencer", handle, cat, followers)
            c.accounts.append(creator)
            for n in range(posts_per_influencer):
                off_topic = n == posts_per_influencer - 1 and c.rng.random() < 0.5
                c.post(creator, c.rng.choice(cats) if off_topic else cat, n)
        c.matches += [Match(f"brand_{BRANDS[cat]}", i) for i in creators(cat, 0)]
    # drawn after the first direct brands and the creators: the corpus of one direct brand a
    # category and no goods brands is what it always was
    for cat in cats:
        for j in range(2, direct_brands + 1):
            c.brand(
                Account(f"brand_{BRANDS[cat]}_{j}", "brand", f"{BRANDS[cat]}{j}", cat, 80_000),
                cat,
                posts_per_brand,
                creators(cat, 0),
            )
        for j in range(1, partner_brands + 1):
            c.brand(
                Account(f"brand_{BRANDS[cat]}_goods{j}", "brand", f"{BRANDS[cat]}.goods{j}", PARTNERS[cat], 120_000),
                cat,
                posts_per_brand,
                creators(PARTNERS[cat], 1),
                product=True,
            )
    if collaborations:  # each category's goods partners also tag a brand that is no account of the corpus
        outside = {i: OUTSIDE[cat] for cat in cats for i in creators(cat, 1)}
        plan = tag_plan(c.accounts, c.matches, outside)
        # a held-out brand's handle is tagged but never written in a caption: captions are content,
        # and its matches' captions naming it would hand the head its labels
        held = {a.handle for a in c.accounts if a.id in set(_held_out(direct_brands, partner_brands))}
        c.posts = tag_posts(c.posts, plan, random.Random(seed * 1000 + 17), unnamed=held)
    write_corpus(Corpus(out, c.accounts, c.posts, c.matches))
    _write_test_brands(out, direct_brands, partner_brands)
    if history:
        write_history(out, c.accounts, datetime.now(UTC), seed)
    return out


def _held_out(direct_brands: int, partner_brands: int) -> list[str]:
    held = [f"brand_{BRANDS[c]}_{direct_brands}" for c in HELD_OUT if direct_brands >= 2]
    return held + [f"brand_{BRANDS[c]}_goods{partner_brands}" for c in HELD_OUT if partner_brands >= 2]


def _write_test_brands(out: Path, direct_brands: int, partner_brands: int) -> None:
    """test_brands.txt: the brands the demo holds out of training, the last direct and the last
    goods brand of food, travel and pets (HELD_OUT), each with a sibling of its kind and
    category left to learn from. ``congruence train`` also keeps a seeded quarter of the
    training brands from the head, for the fusion; at the demo's seed they are of the other
    three categories, so no held-out brand loses its sibling (tests/test_demo_collabs.py)."""
    held = _held_out(direct_brands, partner_brands)
    if held:
        (out / "test_brands.txt").write_text("".join(f"{b}\n" for b in held), encoding="utf-8")
