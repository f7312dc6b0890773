"""A real brand benchmark from Instagram tags (``../shared/data/instagram``, text and alt text).

Who partners with a brand is read off the posts: an influencer who tagged an account is
its partner. The benchmark asks the head to find, for brands and influencers it never
trained on, the partners among everyone else:

- Influencers: users with at least ``min_posts`` captioned posts.
- Brands: accounts tagged by at least ``min_taggers`` distinct influencers (zara, hm,
  gucci, danielwellington, nike, asos, target...), not themselves authors in the source.
- Sides: brands and influencers are each split, seeded, into a train and a test side.
  Pairs join a brand and an influencer of the same side only: a test brand's positives
  are test influencers, and nothing of the test side is ever trained on.
- A brand is described by its *train-side* partners' posts that tag it (what its
  partners write when they work with it); an influencer by its posts that tag none of the
  benchmark's brands. So a test brand's text was written by train-side influencers, never
  by the test influencers it is scored against (no author match).
- Every influencer is described by the same number of posts (``describe_posts``, chosen
  at random, seeded, among those that tag none of the benchmark's brands); one with fewer is
  left out. Keeping all of them would leak the label through the count: a partner loses the
  posts that tag its brand, so on the real posts 75 % of the influencers left with one post
  were partners against 18 % overall, and ranking by fewer posts alone reached AUC 0.79.
- The label cannot leak: every @mention and #hashtag is removed from all text, and so is
  every benchmark brand's handle written as a word; posts carry no tagged list. Brand ids
  are opaque (``tagbrand_0007``); the handle is kept for people reading results.
- Each brand account carries ``partner_categories``: the shares of its train-side
  partners' categories, for the category-prior baseline (``bench.brand_tags``).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from congruence.datasets.instagram_corpus import SourcePost, read_source
from congruence.datasets.instagram_text import with_alt
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.store.rows import Account, Match

# hashtags may be glued together (#ootd#style), and mentions too (@agency@makeup); a first
# mention follows no word character (a@b.com is an address)
_TAGS = re.compile(r"#[\w.]*\w|(?<![\w])@[\w.]*\w(?:@[\w.]*\w)*", re.UNICODE)
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class BrandTagConfig:
    seed: int = 0
    min_posts: int = 2  # captioned posts a user needs to be an influencer
    min_taggers: int = 20  # distinct influencers tagging an account for it to be a brand
    min_brand_posts: int = 3  # train-side partner posts that describe a brand
    max_brand_posts: int = 30  # caps the few huge brands (zara: hundreds of tagging posts)
    test_brand_fraction: float = 0.2
    test_influencer_fraction: float = 0.25
    alt_text: bool = True
    describe_posts: int = 1  # posts describing every influencer (the same count for all: no leak)
    max_posts: int | None = None  # read only the first lines of the source (tests)


@dataclass(frozen=True)
class TagBrand:
    id: str
    handle: str
    side: str
    posts: tuple[SourcePost, ...]  # its train-side partners' posts that tag it
    partners: dict[str, tuple[str, ...]]  # side -> partner influencers, sorted


def tag_stripper(brand_handles: Iterable[str]) -> Callable[[str], str]:
    """A function removing every @mention and #hashtag, and each of ``brand_handles`` written
    as a word (case-insensitive), from a text; spaces are tidied, line breaks kept."""
    names = sorted({h.lower() for h in brand_handles if h}, key=lambda h: (-len(h), h))
    words = (
        re.compile(rf"(?<![\w.])(?:{'|'.join(map(re.escape, names))})(?![\w]|\.\w)", re.IGNORECASE) if names else None
    )

    def strip(text: str) -> str:
        text = _TAGS.sub(" ", text)
        if words is not None:
            text = words.sub(" ", text)
        return "\n".join(line for line in (_SPACES.sub(" ", raw).strip() for raw in text.split("\n")) if line)

    return strip


def split_side(ids: Iterable[str], fraction: float, seed: int, salt: int) -> dict[str, str]:
    """id -> 'test' for a seeded ``fraction`` of ``ids`` (sorted first), else 'train'."""
    ordered = sorted(ids)
    n = round(fraction * len(ordered))
    order = np.random.default_rng([seed, salt]).permutation(len(ordered))
    test = {ordered[i] for i in order[:n]}
    return {i: "test" if i in test else "train" for i in ordered}


def _influencers(posts: Iterable[SourcePost], min_posts: int) -> dict[str, list[SourcePost]]:
    by_user: dict[str, list[SourcePost]] = defaultdict(list)
    for p in posts:
        by_user[p.user].append(p)
    return {u: ps for u, ps in sorted(by_user.items()) if len(ps) >= min_posts}


def select_brands(
    influencers: dict[str, list[SourcePost]], authors: frozenset[str], config: BrandTagConfig
) -> tuple[list[TagBrand], dict[str, str]]:
    """(brands, influencer id -> side): brands with enough train-side posts and a partner on
    their own side, ids in handle order."""
    taggers: dict[str, set[str]] = defaultdict(set)
    for u, ps in influencers.items():
        for p in ps:
            for t in p.tagged:
                taggers[t].add(u)
    handles = sorted(t for t, us in taggers.items() if len(us) >= config.min_taggers and t not in authors)
    side_of = split_side(influencers, config.test_influencer_fraction, config.seed, 1)
    brand_side = split_side(handles, config.test_brand_fraction, config.seed, 2)
    rng = np.random.default_rng([config.seed, 3])
    brands: list[TagBrand] = []
    for h in handles:
        partners = {s: tuple(sorted(u for u in taggers[h] if side_of[u] == s)) for s in ("train", "test")}
        described = sorted((p for u in partners["train"] for p in influencers[u] if h in p.tagged), key=lambda p: p.id)
        if len(described) < config.min_brand_posts or not partners[brand_side[h]]:
            continue
        keep = sorted(rng.permutation(len(described))[: config.max_brand_posts])
        brands.append(
            TagBrand(f"tagbrand_{len(brands):04d}", h, brand_side[h], tuple(described[i] for i in keep), partners)
        )
    return brands, side_of


def _accounts(influencers: dict[str, list[SourcePost]], described: set[str], brands: list[TagBrand]) -> list[Account]:
    """Influencers with a describing post, then brands (their category shares over all their
    train-side partners, described or not)."""
    out = [
        Account(u, "influencer", u, ps[0].category, ps[0].followers) for u, ps in influencers.items() if u in described
    ]
    for b in brands:
        cats = Counter(influencers[u][0].category or "unknown" for u in b.partners["train"])
        total = sum(cats.values())
        shares = {c: round(n / total, 6) for c, n in sorted(cats.items())}
        out.append(
            Account(
                b.id,
                "brand",
                b.handle,
                max(cats, key=lambda c: (cats[c], c)) if cats else "",
                None,
                extra={"partner_categories": shares, "side": b.side},
            )
        )
    return out


def _post(p: SourcePost, post_id: str, account_id: str, strip: Callable[[str], str], alt: bool) -> Post | None:
    """The post as the corpus holds it (cleaned text, no tagged list), or None with no text left."""
    caption = strip(p.caption)
    text = with_alt(caption, strip(p.alt)) if alt else caption
    if not text:
        return None
    ts = None if p.ts is None else datetime.fromtimestamp(p.ts, tz=UTC)
    return Post(post_id, account_id, None, text, p.likes, p.comments, ts, p.sponsored, ())


def _posts(
    influencers: dict[str, list[SourcePost]], brands: list[TagBrand], config: BrandTagConfig
) -> tuple[list[Post], set[str]]:
    """(posts, influencers described): each influencer by ``describe_posts`` of its posts that
    tag none of the benchmark's brands and keep some text, drawn at random (seeded); one with
    fewer such posts is left out."""
    if config.describe_posts < 1:
        raise ValueError(f"describe_posts must be at least 1, got {config.describe_posts}")
    strip = tag_stripper(b.handle for b in brands)
    benchmark = {b.handle for b in brands}
    rng = np.random.default_rng([config.seed, 4])
    out: list[Post] = []
    described: set[str] = set()
    for u, ps in influencers.items():
        own = [q for p in ps if not benchmark & set(p.tagged) and (q := _post(p, p.id, u, strip, config.alt_text))]
        if len(own) < config.describe_posts:
            continue
        out += [own[i] for i in sorted(rng.permutation(len(own))[: config.describe_posts])]
        described.add(u)
    for b in brands:  # a post tagging two brands describes both: one copy each
        out += [q for q in (_post(p, f"{p.id}_{b.id}", b.id, strip, config.alt_text) for p in b.posts) if q is not None]
    return out, described


def build_brand_tag_corpus(posts_gz: Path, out: Path, config: BrandTagConfig = BrandTagConfig()) -> Path:
    """Write the corpus (accounts/posts/matches.jsonl), test_brands.txt, test_influencers.txt
    and corpus_info.json under ``out``; returns ``out``."""
    source = read_source(posts_gz, config.max_posts)
    influencers = _influencers(source.posts, config.min_posts)
    brands, side_of = select_brands(influencers, source.users, config)
    posts, described = _posts(influencers, brands, config)
    matches = [Match(b.id, u) for b in brands for u in b.partners[b.side] if u in described]
    write_corpus(Corpus(out, _accounts(influencers, described, brands), posts, matches))
    paired = {m.brand_id for m in matches}  # a test brand whose test-side partners all lack posts cannot be scored
    test_brands = [b.id for b in brands if b.side == "test" and b.id in paired]
    test_infl = [u for u in influencers if u in described and side_of[u] == "test"]
    (out / "test_brands.txt").write_text("".join(f"{b}\n" for b in test_brands), encoding="utf-8")
    (out / "test_influencers.txt").write_text("".join(f"{u}\n" for u in test_infl), encoding="utf-8")
    info = _info(config, posts_gz, len(described), brands, matches, test_brands, test_infl, len(posts))
    (out / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def _info(
    config: BrandTagConfig,
    posts_gz: Path,
    influencers: int,
    brands: list[TagBrand],
    matches: list[Match],
    test_brands: list[str],
    test_infl: list[str],
    n_posts: int,
) -> dict[str, Any]:
    return {
        "source": str(posts_gz),
        "config": asdict(config),
        "influencers": influencers,
        "test_influencers": len(test_infl),
        "brands": len(brands),
        "test_brands": len(test_brands),
        "posts": n_posts,
        "brand_posts": sum(len(b.posts) for b in brands),
        "matches": len(matches),
        "test_matches": sum(1 for m in matches if m.brand_id in set(test_brands)),
        "brand_handles": {b.id: b.handle for b in brands},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m congruence.datasets.brand_tags OUT [--source posts.jsonl.gz]``: prints corpus_info."""
    import argparse

    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "instagram" / "posts.jsonl.gz"
    p = argparse.ArgumentParser(prog="python -m congruence.datasets.brand_tags", description=main.__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--source", type=Path, default=default)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-taggers", type=int, default=BrandTagConfig.min_taggers)
    p.add_argument("--describe-posts", type=int, default=BrandTagConfig.describe_posts)
    a = p.parse_args(argv)
    out = build_brand_tag_corpus(
        a.source, a.out, BrandTagConfig(seed=a.seed, min_taggers=a.min_taggers, describe_posts=a.describe_posts)
    )
    print((out / "corpus_info.json").read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
