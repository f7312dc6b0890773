"""The Instagram corpus builder: a slice of the real posts in, a clean README-format corpus out.

The cleaning helpers are tested on literal strings; the builder on the first 5,000 lines of
../shared/data/instagram/posts.jsonl.gz (skipped when absent) with thresholds lowered so
that the slice still has brands. The product's own corpus reader checks every written row.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from congruence.datasets.instagram_corpus import (
    BRAND_PREFIX,
    InstagramCorpusConfig,
    build_instagram_corpus,
    caption_key,
)
from congruence.datasets.instagram_text import (
    CATEGORIES,
    clean_category,
    clean_text,
    handle_masker,
    informative_alt,
)
from congruence.indexer.corpus import read_corpus
from tests.conftest import SHARED

SOURCE = SHARED / "instagram" / "posts.jsonl.gz"
SLICE = InstagramCorpusConfig(max_posts=5000, min_taggers=3, min_brand_posts=2)
requires_instagram = pytest.mark.skipif(
    not SOURCE.exists(), reason=f"real Instagram posts not found at {SOURCE} (../shared/data/instagram)"
)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("fashion", "fashion"),
        ("Fashion ", "fashion"),
        ("fasion", "fashion"),
        ("fashion 0.5", "fashion"),
        ("interiour", "interior"),
        ("by", ""),
        (None, ""),
        (3, ""),
        ("", ""),
    ],
)
def test_clean_category(raw: object, want: str) -> None:
    assert clean_category(raw) == want


def test_clean_text_drops_controls_keeps_layout() -> None:
    assert clean_text(" a\x00b\x07c\nd\te\x9f\u2028f ") == "abc\nd\te\nf"
    assert clean_text(None) == ""


def test_informative_alt() -> None:
    assert informative_alt("No photo description available.") == ""
    assert informative_alt(None) == ""
    assert informative_alt("Image may contain: 1 person, shoes.") == "Image may contain: 1 person, shoes"


def test_handle_masker_whole_handles_only() -> None:
    mask = handle_masker(["zara", "liketoknow.it"])
    text = "In @Zara and #zara. Not @zarahome, @zara.home or me@zara; via @liketoknow.it!"
    assert mask(text) == "In @brand and #zara. Not @zarahome, @zara.home or me@zara; via @brand!"
    assert handle_masker([])("@zara") == "@zara"


def _rows(path: Path) -> list[dict[str, Any]]:
    # rows end at "\n" only, as the product reader splits them (str.splitlines() cuts at more)
    with path.open(encoding="utf-8", newline="\n") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SOURCE.exists():
        pytest.skip(f"real Instagram posts not found at {SOURCE} (../shared/data/instagram)")
    return build_instagram_corpus(SOURCE, tmp_path_factory.mktemp("ig") / "corpus", SLICE)


@requires_instagram
def test_product_reader_accepts_every_row(corpus: Path) -> None:
    read = read_corpus(corpus)
    assert read.errors == []
    info = json.loads((corpus / "corpus_info.json").read_text())
    kinds = Counter(a.kind for a in read.accounts)
    assert (kinds["brand"], kinds["influencer"]) == (info["brands"], info["influencers"])
    assert info["brands"] >= 20 and len(read.matches) == info["matches"] >= info["brands"] * SLICE.min_taggers
    assert all(p.image is None and p.caption.strip() for p in read.posts)


@requires_instagram
def test_ids_unique_and_matches_refer_to_accounts(corpus: Path) -> None:
    accounts = _rows(corpus / "accounts.jsonl")
    ids = [a["id"] for a in accounts]
    assert len(ids) == len(set(ids))
    assert all(a["id"].startswith(BRAND_PREFIX) == (a["kind"] == "brand") for a in accounts)
    kind = {a["id"]: a["kind"] for a in accounts}
    matches = _rows(corpus / "matches.jsonl")
    assert all(kind.get(m["brand_id"]) == "brand" and kind.get(m["influencer_id"]) == "influencer" for m in matches)
    posts = _rows(corpus / "posts.jsonl")
    assert len({p["id"] for p in posts}) == len(posts)
    n_posts = Counter(p["account_id"] for p in posts)
    assert all(n_posts[i] >= (SLICE.min_brand_posts if k == "brand" else SLICE.min_posts) for i, k in kind.items())


@requires_instagram
def test_no_caption_both_brand_and_influencer(corpus: Path) -> None:
    posts = _rows(corpus / "posts.jsonl")
    keys: dict[str, list[str]] = {"brand": [], "influencer": []}
    for p in posts:
        caption = p["caption"].removesuffix("\n" + p["alt"]) if p["alt"] else p["caption"]
        keys["brand" if p["account_id"].startswith(BRAND_PREFIX) else "influencer"].append(caption_key(caption))
    assert not set(keys["brand"]) & set(keys["influencer"])
    assert len(set(keys["brand"])) == len(keys["brand"])  # no donor post given to two brands
    # a brand's posts come from authors who are not influencers of the corpus
    influencers = {a["id"] for a in _rows(corpus / "accounts.jsonl") if a["kind"] == "influencer"}
    assert not {p["author"] for p in posts if p["account_id"].startswith(BRAND_PREFIX)} & influencers


@requires_instagram
def test_brand_handles_masked_and_categories_clean(corpus: Path) -> None:
    accounts = _rows(corpus / "accounts.jsonl")
    handles = [a["handle"] for a in accounts if a["kind"] == "brand"]
    pattern = re.compile(r"(?<![\w.])@(?:" + "|".join(map(re.escape, handles)) + r")(?![\w]|\.\w)", re.IGNORECASE)
    assert not any(pattern.search(p["caption"]) for p in _rows(corpus / "posts.jsonl"))
    assert {a["category"] for a in accounts} <= set(CATEGORIES) | {""}
    assert all(a["category"] for a in accounts if a["kind"] == "brand")


@requires_instagram
def test_test_brands_are_a_fifth_of_the_brands(corpus: Path) -> None:
    brands = {a["id"] for a in _rows(corpus / "accounts.jsonl") if a["kind"] == "brand"}
    test = (corpus / "test_brands.txt").read_text().split()
    assert set(test) < brands and len(set(test)) == len(test)
    assert len(test) == round(SLICE.test_fraction * len(brands))


@requires_instagram
def test_deterministic_for_a_seed(corpus: Path, tmp_path: Path) -> None:
    again = build_instagram_corpus(SOURCE, tmp_path / "again", SLICE)
    other = build_instagram_corpus(SOURCE, tmp_path / "other", replace(SLICE, seed=1))
    names = ("accounts.jsonl", "posts.jsonl", "matches.jsonl", "test_brands.txt", "corpus_info.json")
    assert all((corpus / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert (corpus / "test_brands.txt").read_bytes() != (other / "test_brands.txt").read_bytes()
