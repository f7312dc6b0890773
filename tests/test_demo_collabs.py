"""The demo corpus's collaborations (``datasets.demo_tags``), read from the folder it writes:
who tags whom, and that the tags change nothing else."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from congruence.datasets.demo import build_demo
from congruence.training.fusion import MIN_PARTNERS, fusion_brands

DEMO_SEED = 0  # the seed `congruence demo` trains with (cli.demo._train_demo_models)


def _rows(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def untagged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("untagged"), collaborations=False)


@pytest.fixture(scope="module")
def graph(demo: Path) -> dict:
    """Brand id -> its matches and its taggers (creators whose posts tag it or name it as sponsor)."""
    accounts, posts, matches = (_rows(demo, n) for n in ("accounts.jsonl", "posts.jsonl", "matches.jsonl"))
    brand_of = {a["handle"]: a["id"] for a in accounts if a["kind"] == "brand"}
    out: dict = {a["id"]: {"matches": set(), "taggers": set()} for a in accounts if a["kind"] == "brand"}
    for m in matches:
        out[m["brand_id"]]["matches"].add(m["influencer_id"])
    for p in posts:
        for h in {*p["tagged"], *p.get("sponsors", [])}:
            if h in brand_of:
                out[brand_of[h]]["taggers"].add(p["account_id"])
    return out


def test_every_brand_has_enough_partners_and_its_matches_tag_it(graph: dict) -> None:
    assert len(graph) == 24
    for brand, g in graph.items():
        assert len(g["matches"] | g["taggers"]) >= MIN_PARTNERS, brand
        assert g["matches"] and g["matches"] <= g["taggers"], brand  # its known partners show as "worked with"
        assert g["taggers"] - g["matches"], brand  # and creators of its taste that are no match


def test_tags_are_mentioned_some_paid_and_some_name_no_account(demo: Path) -> None:
    accounts, posts = _rows(demo, "accounts.jsonl"), _rows(demo, "posts.jsonl")
    category = {a["id"]: a["category"] for a in accounts}
    kind = {a["id"]: a["kind"] for a in accounts}
    handles = {a["handle"] for a in accounts}
    tagged = [p for p in posts if p["tagged"]]
    assert tagged and {kind[p["account_id"]] for p in tagged} == {"influencer"}
    held = {a["handle"] for a in accounts if a["id"] in set((demo / "test_brands.txt").read_text().split())}
    assert len(held) == 6
    # every tag is in its caption, but a held-out brand's: its name there would be its label in the content
    assert all((f"@{h}" in p["caption"]) == (h not in held) for p in tagged for h in p["tagged"])
    assert {h for p in tagged for h in p["tagged"]} >= held  # held-out brands are still tagged
    paid = [p for p in posts if p["sponsored"]]
    assert 0 < len(paid) < len(tagged)
    assert all(p["sponsors"] and set(p["sponsors"]) <= set(p["tagged"]) and "#ad" in p["caption"] for p in paid)
    outside: dict[str, set[str]] = defaultdict(set)
    for p in tagged:
        for h in set(p["tagged"]) - handles:
            outside[h].add(p["account_id"])
    assert len(outside) >= 3
    for h, by in outside.items():  # each tagged by a group of creators of one category
        assert len(by) >= 3 and len({category[a] for a in by}) == 1, (h, by)


def test_the_tags_change_nothing_else(demo: Path, untagged: Path) -> None:
    for name in ("accounts.jsonl", "matches.jsonl", "test_brands.txt"):
        assert (demo / name).read_bytes() == (untagged / name).read_bytes(), name
    images = sorted(p.name for p in (demo / "images").iterdir())
    assert images == sorted(p.name for p in (untagged / "images").iterdir()) and len(images) == 396
    assert all((demo / "images" / n).read_bytes() == (untagged / "images" / n).read_bytes() for n in images)
    tag_fields = ("caption", "sponsored", "tagged", "sponsors")
    new, old = _rows(demo, "posts.jsonl"), _rows(untagged, "posts.jsonl")
    assert [{k: v for k, v in p.items() if k not in tag_fields} for p in new] == [
        {k: v for k, v in p.items() if k not in tag_fields} for p in old
    ]  # likes, comments, times, images: the same draws
    assert all(p["caption"].startswith(q["caption"]) for p, q in zip(new, old, strict=True))
    assert not any(q["tagged"] or q["sponsored"] for q in old)


def test_the_held_out_brands_keep_a_sibling_the_head_trains_on(demo: Path, graph: dict) -> None:
    """`congruence train` keeps a seeded quarter of the training brands with 6+ partners from the
    head for the fusion (at least 4, or there is no fusion); no held-out brand may lose to it the
    one sibling (same kind and category) the head learns its partners from."""
    accounts = {a["id"]: a for a in _rows(demo, "accounts.jsonl") if a["kind"] == "brand"}
    held = (demo / "test_brands.txt").read_text(encoding="utf-8").split()
    train = [b for b, g in graph.items() if g["matches"] and b not in held]
    reserved = fusion_brands({b: len(graph[b]["matches"] | graph[b]["taggers"]) for b in train}, DEMO_SEED)
    assert len(reserved) >= 4  # the demo learns a fusion
    head_trains_on = set(train) - set(reserved)

    def kind(b: str) -> tuple[str, bool]:
        return accounts[b]["category"], "_goods" in b

    assert len(held) == 6
    for b in held:
        assert any(kind(s) == kind(b) for s in head_trains_on - {b}), (b, reserved)
