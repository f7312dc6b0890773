"""A warm-start benchmark from real Instagram posts (``../shared/data/instagram``): a brand comes
with some of its partners known, and the product must find the others (docs/collaborations.md).

- Influencers: users with at least ``min_posts`` captioned posts. Brands: accounts tagged by at
  least ``min_taggers`` distinct influencers, not themselves authors in the source.
- A seeded ``test_brand_fraction`` of the brands is held out. Each held-out brand's taggers are
  shuffled (seeded): ``known_fraction`` of them are its known partners (its matches), the rest
  are hidden. Its posts are the known partners' posts that tag it.
- A hidden partner loses its posts that tag the brand, so neither the graph nor the text holds
  the answer. Every other influencer loses one random post, so that no post count gives the
  label away (a hidden partner of two held-out brands loses both brands' posts).
- Held-out brands' handles are stripped from every caption and alt text (as @mentions and as
  words); tagged lists keep everything else: the graph of who tagged whom is the evidence.
- Training brands keep all their taggers as matches; their posts are their taggers' posts that
  tag them (at most ``max_brand_posts``).

Files: the corpus (accounts/posts/matches.jsonl), ``test_brands.txt``, ``hidden.jsonl`` (one
``{"brand_id", "hidden": [...], "known": [...]}`` per held-out brand) and ``corpus_info.json``.
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

_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class WarmStartConfig:
    seed: int = 0
    min_posts: int = 2  # captioned posts a user needs to be an influencer (it loses one)
    min_taggers: int = 20  # distinct influencers tagging an account for it to be a brand
    test_brand_fraction: float = 0.2
    known_fraction: float = 0.5  # of a held-out brand's taggers, known as its partners
    max_brand_posts: int = 30
    alt_text: bool = True
    max_posts: int | None = None  # read only the first lines of the source (tests)


@dataclass(frozen=True)
class WarmBrand:
    id: str
    handle: str
    test: bool
    taggers: tuple[str, ...]  # sorted
    known: tuple[str, ...]  # all taggers for a training brand
    hidden: tuple[str, ...]  # () for a training brand


def handle_stripper(handles: Iterable[str]) -> Callable[[str], str]:
    """A function removing each of ``handles`` from a text, as an @mention or written as a word
    (case-insensitive); spaces are tidied, line breaks kept."""
    names = sorted({h.lower() for h in handles if h}, key=lambda h: (-len(h), h))
    found = (
        re.compile(rf"(?<![\w.])@?(?:{'|'.join(map(re.escape, names))})(?![\w]|\.\w)", re.IGNORECASE) if names else None
    )

    def strip(text: str) -> str:
        if found is not None:
            text = found.sub(" ", text)
        return "\n".join(line for line in (_SPACES.sub(" ", raw).strip() for raw in text.split("\n")) if line)

    return strip


def select_brands(
    influencers: dict[str, list[SourcePost]], authors: frozenset[str], config: WarmStartConfig
) -> list[WarmBrand]:
    """Every account tagged by enough influencers, in handle order; the held-out ones with their
    taggers split into known and hidden (seeded)."""
    taggers: dict[str, set[str]] = defaultdict(set)
    for u, ps in influencers.items():
        for p in ps:
            for t in p.tagged:
                taggers[t].add(u)
    handles = sorted(t for t, us in taggers.items() if len(us) >= config.min_taggers and t not in authors)
    n_test = round(config.test_brand_fraction * len(handles))
    test = {handles[i] for i in np.random.default_rng([config.seed, 1]).permutation(len(handles))[:n_test]}
    out = []
    for i, h in enumerate(handles):
        who = tuple(sorted(taggers[h]))
        if h in test:
            order = np.random.default_rng([config.seed, 2, i]).permutation(len(who))
            n_known = max(1, round(config.known_fraction * len(who)))
            known = tuple(sorted(who[j] for j in order[:n_known]))
            hidden = tuple(sorted(who[j] for j in order[n_known:]))
        else:
            known, hidden = who, ()
        out.append(WarmBrand(f"wbrand_{i:04d}", h, h in test, who, known, hidden))
    return out


def _post(p: SourcePost, post_id: str, account_id: str, strip: Callable[[str], str], alt: bool) -> Post | None:
    caption = strip(p.caption)
    text = with_alt(caption, strip(p.alt)) if alt else caption
    if not text:
        return None
    ts = None if p.ts is None else datetime.fromtimestamp(p.ts, tz=UTC)
    return Post(post_id, account_id, None, text, p.likes, p.comments, ts, p.sponsored, p.tagged)


def _posts(
    influencers: dict[str, list[SourcePost]], brands: list[WarmBrand], config: WarmStartConfig
) -> tuple[list[Post], dict[str, int]]:
    """(posts, influencer -> posts it lost)."""
    strip = handle_stripper(b.handle for b in brands if b.test)
    hidden_of: dict[str, set[str]] = defaultdict(set)
    for b in brands:
        for u in b.hidden:
            hidden_of[u].add(b.handle)
    rng = np.random.default_rng([config.seed, 3])
    out: list[Post] = []
    lost: dict[str, int] = {}
    for u, ps in influencers.items():
        gone = hidden_of.get(u)
        if gone:
            keep = [p for p in ps if not gone & set(p.tagged)]
        else:
            drop = int(rng.integers(len(ps)))
            keep = [p for j, p in enumerate(ps) if j != drop]
        lost[u] = len(ps) - len(keep)
        out += [q for p in keep if (q := _post(p, p.id, u, strip, config.alt_text)) is not None]
    for i, b in enumerate(brands):
        known = set(b.known)
        described = sorted(
            (
                p
                for u in known
                for p in influencers[u]
                if b.handle in p.tagged and not hidden_of.get(u, set()) & set(p.tagged)
            ),
            key=lambda p: p.id,
        )
        pick = np.random.default_rng([config.seed, 4, i]).permutation(len(described))[: config.max_brand_posts]
        out += [
            q
            for j in sorted(pick)
            if (q := _post(described[j], f"{described[j].id}_{b.id}", b.id, strip, config.alt_text))
        ]
    return out, lost


def _accounts(influencers: dict[str, list[SourcePost]], with_posts: set[str], brands: list[WarmBrand]) -> list[Account]:
    out = [
        Account(u, "influencer", u, ps[0].category, ps[0].followers) for u, ps in influencers.items() if u in with_posts
    ]
    for b in brands:
        cats = Counter(influencers[u][0].category or "unknown" for u in b.known)
        top = min(cats.items(), key=lambda kv: (-kv[1], kv[0]))[0] if cats else ""
        out.append(Account(b.id, "brand", b.handle, top, None, extra={"held_out": b.test}))
    return out


def build_warm_start_corpus(posts_gz: Path, out: Path, config: WarmStartConfig = WarmStartConfig()) -> Path:
    """Write the corpus, test_brands.txt, hidden.jsonl and corpus_info.json under ``out``."""
    source = read_source(posts_gz, config.max_posts)
    by_user: dict[str, list[SourcePost]] = defaultdict(list)
    for p in source.posts:
        by_user[p.user].append(p)
    influencers = {u: ps for u, ps in sorted(by_user.items()) if len(ps) >= config.min_posts}
    brands = select_brands(influencers, source.users, config)
    posts, lost = _posts(influencers, brands, config)
    with_posts = {p.account_id for p in posts}
    described = {b.id for b in brands if b.id in with_posts}
    brands = [b for b in brands if b.id in described]  # a brand whose every post lost its text: left out
    matches = [Match(b.id, u) for b in brands for u in b.known if u in with_posts]
    posts = [
        p for p in posts if p.account_id in with_posts and (p.account_id in influencers or p.account_id in described)
    ]
    write_corpus(Corpus(out, _accounts(influencers, with_posts, brands), posts, matches))
    test = [b for b in brands if b.test]
    (out / "test_brands.txt").write_text("".join(f"{b.id}\n" for b in test), encoding="utf-8")
    rows = [
        {
            "brand_id": b.id,
            "handle": b.handle,
            "known": [u for u in b.known if u in with_posts],
            "hidden": [u for u in b.hidden if u in with_posts],
        }
        for b in test
    ]
    (out / "hidden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    info: dict[str, Any] = {
        "source": str(posts_gz),
        "config": asdict(config),
        "influencers": len([u for u in influencers if u in with_posts]),
        "brands": len(brands),
        "test_brands": len(test),
        "posts": len(posts),
        "matches": len(matches),
        "hidden": sum(len(r["hidden"]) for r in rows),
        "lost_posts": dict(sorted(Counter(lost.values()).items())),
        "brand_handles": {b.id: b.handle for b in brands},
    }
    (out / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m congruence.datasets.warm_start OUT [--source posts.jsonl.gz]``: prints corpus_info."""
    import argparse

    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "instagram" / "posts.jsonl.gz"
    p = argparse.ArgumentParser(prog="python -m congruence.datasets.warm_start", description=main.__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--source", type=Path, default=default)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-taggers", type=int, default=WarmStartConfig.min_taggers)
    a = p.parse_args(argv)
    out = build_warm_start_corpus(a.source, a.out, WarmStartConfig(seed=a.seed, min_taggers=a.min_taggers))
    info = json.loads((out / "corpus_info.json").read_text())
    info.pop("brand_handles")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
