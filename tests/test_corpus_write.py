"""write_corpus is the inverse of read_corpus: what is written reads back the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image

from congruence.datasets.demo import build_demo
from congruence.indexer.corpus import Corpus, Post, read_corpus
from congruence.indexer.corpus_write import write_corpus
from congruence.store.rows import Account, Match

NAMES = ("accounts.jsonl", "posts.jsonl", "matches.jsonl")


def small_corpus(root: Path) -> Corpus:
    """Unicode everywhere, optional fields missing, images in nested folders, a text-only post."""
    (root / "img" / "ünï").mkdir(parents=True)
    for name in ("a.jpg", "ünï/b ç.png"):
        Image.new("RGB", (8, 8), "red").save(root / "img" / name)
    accounts = [
        Account(
            "b1", "brand", "Zöë_Café", "beauté", 250_000, extra={"site": "https://zoe.example", "tags": ["a", "ß"]}
        ),
        Account("i1", "influencer", "リナ", "", None),
        Account("i2", "influencer", "i2", "fitness", 0),
    ]
    posts = [
        Post(
            "p1",
            "b1",
            root / "img" / "a.jpg",
            "Naïve café ☕ #été\nline two\u2028sep\x85nel",
            likes=12,
            comments=0,
            ts=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
            sponsored=True,
            tagged=("i1", "i2"),
            extra={"alt": "Image may contain: 1 person", "source": {"n": 1}},
        ),
        Post("p2", "i1", root / "img" / "ünï" / "b ç.png", ""),
        Post(
            "p3",
            "i1",
            None,
            '  spaces kept, emoji 🧘‍♀️, quotes " and \\ ',
            likes=None,
            comments=7,
            ts=datetime(2026, 3, 1, 14, 30, 15, 250_000, tzinfo=timezone(timedelta(hours=2))),
        ),
        Post("p4", "i2", None, "text only", ts=datetime(2020, 1, 1, tzinfo=UTC)),
    ]
    return Corpus(root, accounts, posts, [Match("b1", "i1"), Match("b1", "i2")])


def test_read_of_write_is_the_corpus(tmp_path: Path) -> None:
    corpus = small_corpus(tmp_path.resolve() / "c")
    back = read_corpus(write_corpus(corpus))
    assert back == corpus
    # extra fields are not part of equality: they round-trip too
    assert [a.extra for a in back.accounts] == [a.extra for a in corpus.accounts]
    assert [p.extra for p in back.posts] == [p.extra for p in corpus.posts]


def test_epoch_timestamps_read_back_the_same(tmp_path: Path) -> None:
    corpus = small_corpus(tmp_path.resolve() / "c")
    assert read_corpus(write_corpus(corpus, timestamps="epoch")) == corpus
    rows = [json.loads(line) for line in (corpus.root / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["ts"] for r in rows] == [1772366400, None, 1772368215.25, 1577836800]


def test_rows_follow_the_readme_layout(tmp_path: Path) -> None:
    corpus = small_corpus(tmp_path.resolve() / "c")
    write_corpus(corpus)
    # splitlines(): the row must not break at U+2028 or NEL, as it would in other tools
    lines = {n: (corpus.root / n).read_text(encoding="utf-8").splitlines() for n in NAMES}
    assert len(lines["posts.jsonl"]) == len(corpus.posts)
    assert lines["accounts.jsonl"][1] == (
        '{"id": "i1", "kind": "influencer", "handle": "リナ", "category": "", "followers": null}'
    )
    assert lines["posts.jsonl"][1] == (
        '{"id": "p2", "account_id": "i1", "image": "img/ünï/b ç.png", "caption": "", '
        '"likes": null, "comments": null, "ts": null, "sponsored": false, "tagged": []}'
    )
    assert json.loads(lines["posts.jsonl"][0])["ts"] == "2026-03-01T12:00:00Z"
    assert lines["matches.jsonl"] == [
        '{"brand_id": "b1", "influencer_id": "i1"}',
        '{"brand_id": "b1", "influencer_id": "i2"}',
    ]


def test_an_image_outside_the_folder_is_refused(tmp_path: Path) -> None:
    corpus = small_corpus(tmp_path / "c")
    elsewhere = Post("p9", "i1", tmp_path / "elsewhere.jpg", "x")
    with pytest.raises(ValueError, match="is not inside the corpus folder"):
        write_corpus(Corpus(corpus.root, corpus.accounts, [elsewhere], []))


def test_rewriting_a_demo_corpus_gives_the_same_bytes(tmp_path: Path) -> None:
    root = build_demo(tmp_path / "demo", influencers_per_category=2, posts_per_influencer=2, posts_per_brand=1)
    before = {n: (root / n).read_bytes() for n in NAMES}
    write_corpus(read_corpus(root))
    assert {n: (root / n).read_bytes() for n in NAMES} == before
