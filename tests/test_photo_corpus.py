"""The photo benchmark corpus (congruence/datasets/photo_corpus.py): the properties its metrics rely on."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from congruence.datasets.photo_corpus import PhotoCorpusConfig, PhotoCorpusInfo, build_photo_corpus
from congruence.indexer.corpus import read_corpus
from tests.conftest import PHOTOS, requires_photos

pytestmark = [requires_photos(), pytest.mark.photos]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PhotoCorpusInfo]:
    out = tmp_path_factory.mktemp("photo-corpus")
    return out, build_photo_corpus(PHOTOS, out, PhotoCorpusConfig.quick())


def rows(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def split_of() -> dict[str, str]:
    lines = (PHOTOS / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]
    return {p: s for p, _, s in (ln.split(",") for ln in lines)}


def test_reads_back_without_errors(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, info = built
    corpus = read_corpus(folder)
    assert corpus.errors == []
    assert len(corpus.posts) == info.posts
    assert len({p.image for p in corpus.posts}) == info.images
    assert corpus.posts[0].extra.keys() >= {"source_photo", "augmentation"}


def test_sides_use_disjoint_photos_of_their_own_split(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, _ = built
    side = {a["id"]: a["side"] for a in rows(folder, "accounts")}
    split = split_of()
    photos: dict[str, set[str]] = defaultdict(set)
    for p in rows(folder, "posts"):
        photos[side[p["account_id"]]].add(p["source_photo"])
        assert split[p["source_photo"]] == side[p["account_id"]], p["id"]
    assert photos["train"] and photos["test"]
    assert not photos["train"] & photos["test"]


def test_test_brands_are_the_test_side(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, info = built
    test = set((folder / "test_brands.txt").read_text(encoding="utf-8").split())
    brands = {a["id"]: a["side"] for a in rows(folder, "accounts") if a["kind"] == "brand"}
    assert test == {b for b, s in brands.items() if s == "test"}
    assert test and set(brands) - test
    assert len(test) == info.brands["test"]


def test_every_influencer_is_paired_on_its_own_side(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, _ = built
    side = {a["id"]: a["side"] for a in rows(folder, "accounts")}
    paired = defaultdict(set)
    for m in rows(folder, "matches"):
        assert side[m["brand_id"]] == side[m["influencer_id"]], m
        paired[m["influencer_id"]].add(m["brand_id"])
    accounts = rows(folder, "accounts")
    lookalike_niches = {
        (a["side"], a["posts_vertical"], c)
        for a in accounts
        if a["kind"] == "brand" and a["brand_kind"].startswith("lookalike:")
        for c in a["prefers"]
    }
    # every influencer is some brand's partner, or a look-alike: nobody's partner, but it
    # posts what a look-alike brand of its side posts
    unpaired = [a for a in accounts if a["kind"] == "influencer" and not paired[a["id"]]]
    assert all((a["side"], a["category"], a["niche"]) in lookalike_niches for a in unpaired)


def test_lookalike_brands_post_what_their_non_partners_post(built: tuple[Path, PhotoCorpusInfo]) -> None:
    """A look-alike brand posts classes that influencers of its own vertical post; its partners
    are influencers of another vertical, and those look-alikes are not among them."""
    folder, _ = built
    accounts = rows(folder, "accounts")
    partners: dict[str, set[str]] = defaultdict(set)
    for m in rows(folder, "matches"):
        partners[m["brand_id"]].add(m["influencer_id"])
    brands = [a for a in accounts if a["kind"] == "brand" and a["brand_kind"].startswith("lookalike:")]
    assert brands
    for b in brands:
        alike = {
            a["id"]
            for a in accounts
            if a["kind"] == "influencer"
            and a["side"] == b["side"]
            and a["category"] == b["posts_vertical"]
            and a["niche"] in b["prefers"]
        }
        assert alike and not alike & partners[b["id"]]
        assert partners[b["id"]] and all(
            next(a for a in accounts if a["id"] == i)["category"] == b["category"] != b["posts_vertical"]
            for i in partners[b["id"]]
        )


def test_every_test_brand_has_positives(built: tuple[Path, PhotoCorpusInfo]) -> None:
    _, info = built
    assert info.test_positives["min"] >= 1


def test_cross_brands_match_influencers_of_another_vertical(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, _ = built
    accounts = {a["id"]: a for a in rows(folder, "accounts")}
    posts_by: dict[str, list[str]] = defaultdict(list)
    for p in rows(folder, "posts"):
        posts_by[p["account_id"]].append(p["label"])
    vertical = {r.split(",")[0]: r.split(",")[1] for r in (PHOTOS / "verticals.csv").read_text().splitlines()[1:]}
    n_cross = 0
    for m in rows(folder, "matches"):
        brand, inf = accounts[m["brand_id"]], accounts[m["influencer_id"]]
        brand_verticals = {vertical[c] for c in posts_by[brand["id"]]}
        assert brand_verticals == {brand["posts_vertical"]}
        assert inf["niche"] in brand["targets"] and inf["category"] == brand["category"]
        if brand["brand_kind"].startswith("cross:"):
            n_cross += 1
            assert inf["category"] != brand["posts_vertical"]
            # what the influencer mostly posts is not what the brand posts
            mostly = Counter(vertical[c] for c in posts_by[inf["id"]]).most_common(1)[0][0]
            assert mostly != brand["posts_vertical"]
    assert n_cross > 0


def test_images_decode_and_variants_differ(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, info = built
    files = sorted((folder / "images").rglob("*.jpg"))
    assert len(files) == info.images
    for f in files[:50]:
        with Image.open(f) as img:
            img.load()
            assert min(img.size) == PhotoCorpusConfig.quick().image_side
    by_photo: dict[tuple[str, int], str] = {
        (p["source_photo"], p["augmentation"]): p["image"] for p in rows(folder, "posts")
    }
    assert len(set(by_photo.values())) == len(by_photo)  # one file per (photo, variant)


def test_deterministic(built: tuple[Path, PhotoCorpusInfo], tmp_path: Path) -> None:
    folder, info = built
    again = build_photo_corpus(PHOTOS, tmp_path, PhotoCorpusConfig.quick())
    assert again.to_dict() | {"folder": ""} == info.to_dict() | {"folder": ""}
    for name in ("accounts.jsonl", "posts.jsonl", "matches.jsonl", "test_brands.txt"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
    first = min((folder / "images").rglob("*.jpg"))
    assert (tmp_path / first.relative_to(folder)).read_bytes() == first.read_bytes()
