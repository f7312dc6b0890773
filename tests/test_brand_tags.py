"""The brand-tag benchmark corpus: sides kept apart, and the label leaks nowhere."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from congruence.datasets.brand_tags import BrandTagConfig, build_brand_tag_corpus, split_side, tag_stripper
from congruence.indexer.corpus import read_corpus

from .conftest import SHARED

INSTAGRAM = SHARED / "instagram" / "posts.jsonl.gz"


def source_rows() -> list[dict[str, object]]:
    """12 influencers with 3 posts each; acme and zeta.co are tagged by many, smallshop by one."""
    rows = []
    for i in range(12):
        user = f"u{i:02d}"
        posts = [
            ("Morning run with @acme #acme #fit Acme rocks", ["acme"] if i % 2 == 0 else []),
            (
                "Coffee at @zeta.co #coffee, ZETA.CO is the best",
                ["zeta.co"] if i % 3 == 0 else ["smallshop"] if i == 1 else [],
            ),
            (f"Sunday in the park with @friend_{i} #sunday, no brands here", []),
        ]
        for n, (caption, tagged) in enumerate(posts):
            rows.append(
                {
                    "file": "x",
                    "user": user,
                    "category": "fashion" if i < 6 else "food",
                    "followers": 5000 + i,
                    "shortcode": f"S{i:02d}{n}",
                    "ts": 1_500_000_000 + i,
                    "likes": 10 * i,
                    "comments": i,
                    "caption": caption,
                    "alt": "Image may contain: 1 person #notag",
                    "sponsored": False,
                    "tagged": tagged,
                }
            )
    return rows


def write_source(path: Path, rows: list[dict[str, object]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def check_corpus(out: Path, source: dict[str, dict[str, object]], describe_posts: int = 1) -> dict[str, str]:
    """Every rule of the module doc, against the source posts (shortcode -> row); returns
    brand id -> handle."""
    info = json.loads((out / "corpus_info.json").read_text())
    handles: dict[str, str] = info["brand_handles"]
    corpus = read_corpus(out)
    assert not corpus.errors
    test_infl, test_brands = set(lines(out / "test_influencers.txt")), set(lines(out / "test_brands.txt"))
    side = {a.id: a.extra["side"] for a in corpus.accounts if a.kind == "brand"}
    paired = {m.brand_id for m in corpus.matches}
    assert {b for b, s in side.items() if s == "test" and b in paired} == test_brands  # those that can be scored
    assert all(h.lower() not in b.lower() for b, h in handles.items())  # opaque ids
    names = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, handles.values())) + r")(?![\w]|\.\w)", re.I)
    for p in corpus.posts:
        assert p.tagged == () and not re.search(r"#\w|(?<!\w)@\w", p.caption), p  # e-mail addresses stay
        assert not names.search(p.caption), p.caption
        if p.account_id in handles:  # a brand's post: one of its train-side partners' that tags it
            row = source[p.id.removesuffix(f"_{p.account_id}")]
            assert handles[p.account_id] in row["tagged"] and row["user"] not in test_infl  # type: ignore[operator]
        else:  # an influencer's own post, tagging none of the benchmark's brands
            assert not set(source[p.id]["tagged"]) & set(handles.values())  # type: ignore[arg-type]
    # the same number of posts for every influencer: a partner's count, smaller by the posts
    # tagging its brand, would give the label away
    per_influencer = Counter(p.account_id for p in corpus.posts if p.account_id not in handles)
    assert set(per_influencer.values()) == {describe_posts}
    assert set(per_influencer) == {a.id for a in corpus.accounts if a.kind == "influencer"}
    for m in corpus.matches:  # pairs never cross sides, and every partner tagged the brand
        assert (m.influencer_id in test_infl) == (side[m.brand_id] == "test")
        assert any(
            handles[m.brand_id] in r["tagged"]
            for r in source.values()  # type: ignore[operator]
            if r["user"] == m.influencer_id
        )
    return handles


def test_sides_and_no_leak_on_a_small_source(tmp_path: Path) -> None:
    rows = source_rows()
    src = write_source(tmp_path / "posts.jsonl.gz", rows)
    config = BrandTagConfig(min_taggers=4, min_brand_posts=1, test_brand_fraction=0.5, test_influencer_fraction=0.5)
    out = build_brand_tag_corpus(src, tmp_path / "corpus", config)
    handles = check_corpus(out, {str(r["shortcode"]): r for r in rows})
    assert sorted(handles.values()) == ["acme", "zeta.co"]  # smallshop: one tagger, not a brand
    corpus = read_corpus(out)
    texts = {p.id: p.caption for p in corpus.posts}
    assert texts["S002"] == "Sunday in the park with , no brands here\nImage may contain: 1 person"
    brand_posts = [p for p in corpus.posts if p.account_id in handles]
    assert brand_posts and all(
        p.caption.startswith(("Morning run with Acme rocks".replace("Acme ", ""), "Coffee at , is the best"))
        for p in brand_posts
    )
    prior = {a.id: a.extra["partner_categories"] for a in corpus.accounts if a.kind == "brand"}
    assert all(abs(sum(shares.values()) - 1) < 1e-6 for shares in prior.values())


def test_influencers_with_too_few_untagged_posts_are_left_out(tmp_path: Path) -> None:
    rows = source_rows()
    src = write_source(tmp_path / "posts.jsonl.gz", rows)
    config = BrandTagConfig(
        min_taggers=4, min_brand_posts=1, test_brand_fraction=0.5, test_influencer_fraction=0.5, describe_posts=2
    )
    out = build_brand_tag_corpus(src, tmp_path / "corpus", config)
    check_corpus(out, {str(r["shortcode"]): r for r in rows}, describe_posts=2)
    # u00, u06: tagged acme and zeta.co, one untagged post left; the other 10 keep two
    influencers = {a.id for a in read_corpus(out).accounts if a.kind == "influencer"}
    assert influencers == {f"u{i:02d}" for i in range(12)} - {"u00", "u06"}
    with pytest.raises(ValueError, match="describe_posts"):
        build_brand_tag_corpus(src, tmp_path / "bad", BrandTagConfig(describe_posts=0))


def test_the_stripper_removes_mentions_hashtags_and_brand_words() -> None:
    strip = tag_stripper(["zara", "hm"])
    assert strip("New in from @zara.home #ootd #zara, Zara and H&M\n@hm  haul  #style") == "New in from , and H&M\nhaul"
    assert strip("mail me at a@b.com, zarahome is not zara") == "mail me at a@b.com, zarahome is not"
    assert strip("by @agency@makeup.artist, #a#b#c") == "by ,"


def test_sides_are_seeded_and_sized() -> None:
    ids = [f"u{i}" for i in range(100)]
    side = split_side(ids, 0.25, seed=3, salt=1)
    assert sum(s == "test" for s in side.values()) == 25 and side == split_side(ids[::-1], 0.25, seed=3, salt=1)
    assert side != split_side(ids, 0.25, seed=4, salt=1)


@pytest.mark.skipif(not INSTAGRAM.exists(), reason=f"real Instagram posts not found at {INSTAGRAM}")
def test_no_leak_on_the_real_posts(tmp_path: Path) -> None:
    config = BrandTagConfig(min_taggers=5, min_brand_posts=2, max_posts=8000)
    out = build_brand_tag_corpus(INSTAGRAM, tmp_path / "corpus", config)
    with gzip.open(INSTAGRAM, "rt", encoding="utf-8") as f:
        source = {}
        for n, line in enumerate(f):
            if n >= 8000:
                break
            row = json.loads(line)
            source.setdefault(str(row["shortcode"]), row)
    handles = check_corpus(out, source)
    info = json.loads((out / "corpus_info.json").read_text())
    assert len(handles) >= 5 and info["test_brands"] >= 1 and info["test_matches"] >= 1
