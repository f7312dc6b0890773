"""The demo's collaborations: creators tag brands in their posts (docs/collaborations.md).

Every creator tags brands of its own taste, the brand accounts of its category (a goods brand's
category is that of the creators it partners with): a known match tags each brand it is a match
of, and a creator that is no brand's match tags them all, so every brand of the default demo has
6+ partners (its matches and its taggers) and ``congruence train`` learns a fusion. One group of
each category's creators (``outside``) also tags a brand that is no account of the corpus
(``OUTSIDE``), evidence for the co-occurrence beyond the corpus's own brands. Each tag lands on
one of the creator's posts, with an @mention in its caption (but for the held-out brands, which
are tagged only: their names in captions would put their labels in the content); some are paid
partnerships (``sponsored``, the brand named as sponsor).

The draws come from a random stream of their own, after the rest of the corpus is drawn, so the
images, likes and every other field are what they are in a demo without tags.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from congruence.indexer.corpus import Post
from congruence.store.rows import Account, Match

# brands of each category's taste that are no account of the corpus
OUTSIDE = {
    "fitness": "trailmix.co",
    "food": "olive.grove",
    "travel": "nomad.packs",
    "pets": "wagwell.treats",
    "fashion": "linen.lane",
    "tech": "bytesize.audio",
}
SPONSORED = 0.3  # the share of tags that are paid partnerships


def tag_plan(accounts: Sequence[Account], matches: Sequence[Match], outside: Mapping[str, str]) -> dict[str, list[str]]:
    """Creator id -> the handles it tags, in order: the brands it is a match of (or, when none,
    every brand of its category), then its ``outside`` handle if it has one."""
    handle = {a.id: a.handle for a in accounts if a.kind == "brand"}
    of_category: dict[str | None, list[str]] = {}
    for a in accounts:
        if a.kind == "brand":
            of_category.setdefault(a.category, []).append(a.handle)
    matched: dict[str, list[str]] = {}
    for m in matches:
        matched.setdefault(m.influencer_id, []).append(handle[m.brand_id])
    plan: dict[str, list[str]] = {}
    for a in accounts:
        if a.kind != "influencer":
            continue
        tags = matched.get(a.id) or of_category.get(a.category, [])
        plan[a.id] = list(dict.fromkeys([*tags, *([outside[a.id]] if a.id in outside else [])]))
    return plan


def tag_posts(
    posts: Sequence[Post], plan: Mapping[str, Sequence[str]], rng: random.Random, unnamed: Collection[str] = ()
) -> list[Post]:
    """``posts`` with the tags of ``plan``: each handle on one of its creator's posts (drawn), a
    paid partnership with probability ``SPONSORED``; a tagged post's caption ends with
    "with @handle ..." (and "#ad" when paid), but for the handles ``unnamed`` (tagged only: the
    held-out brands, whose names in their partners' captions would be their labels in the
    content). The posts of accounts not in ``plan`` are unchanged."""
    index = {p.id: i for i, p in enumerate(posts)}
    own: dict[str, list[str]] = {}
    for p in posts:
        own.setdefault(p.account_id, []).append(p.id)
    tags: dict[str, dict[str, bool]] = {}  # post id -> handle -> paid
    for account, handles in plan.items():
        for h in handles:
            pid = own[account][rng.randrange(len(own[account]))]
            tags.setdefault(pid, {})[h] = rng.random() < SPONSORED  # a creator's plan names each handle once
    out = list(posts)
    for pid, named in tags.items():
        p = out[index[pid]]
        paid = [h for h, v in named.items() if v]
        mentions = " ".join(f"@{h}" for h in named if h not in unnamed)
        out[index[pid]] = replace(
            p,
            caption=(f"{p.caption} with {mentions}" if mentions else p.caption) + (" #ad" if paid else ""),
            tagged=tuple(named),
            sponsored=bool(paid),
            extra={**p.extra, "sponsors": paid} if paid else p.extra,
        )
    return out
