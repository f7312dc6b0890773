"""The fine-grained kind of the photo benchmark (congruence/datasets/photo_fine.py, issue 36)
and its bench section's targets (bench/ranking.py)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from bench import ranking
from bench.ranking import FINE_TARGETS, CliRun, RankingConfig, check_targets
from congruence.core.settings import Settings
from congruence.datasets.photo_corpus import PhotoCorpusInfo
from congruence.datasets.photo_design import Catalog, ground_truth, load_catalog
from congruence.datasets.photo_fine import (
    FineCorpusConfig,
    build_fine_corpus,
    class_maps,
    fine_influencer_posts,
    plan_fine_accounts,
)
from tests.conftest import PHOTOS, run

NO_PHOTOS = f"real photos not found at {PHOTOS} (../shared/data/photos)"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    if not (PHOTOS / "labels.csv").exists():
        pytest.skip(NO_PHOTOS)
    return load_catalog(PHOTOS)


@pytest.fixture(scope="module")
def built(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PhotoCorpusInfo]:
    out = tmp_path_factory.mktemp("photo-fine")
    return out, build_fine_corpus(PHOTOS, out, FineCorpusConfig.quick())


def rows(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def ids(path: Path) -> set[str]:
    return set(path.read_text(encoding="utf-8").split())


@pytest.mark.photos
def test_the_default_corpus_has_the_issues_sizes(catalog: Catalog) -> None:
    """60 brands (20 held out), half same-vertical, half cross-vertical, 3 favourite classes
    each; 300 influencers, 20 per vertical held out; every brand has partners."""
    config = FineCorpusConfig()
    brands, infs = plan_fine_accounts(catalog, class_maps(catalog, config.seed), config)
    assert Counter((b.side, b.kind.group) for b in brands) == {
        ("train", "same"): 20,
        ("train", "cross"): 20,
        ("test", "same"): 10,
        ("test", "cross"): 10,
    }
    assert all(len(b.prefers) == 3 and {catalog.vertical_of[c] for c in b.prefers} == {b.kind.posts} for b in brands)
    assert Counter(i.side for i in infs) == {"train": 100, "test": 200}
    assert set(Counter(i.vertical for i in infs if i.side == "test").values()) == {20}
    partnered = Counter(b for b, _ in ground_truth(brands, infs))
    assert all(partnered[b.id] >= 1 for b in brands)


@pytest.mark.photos
def test_an_influencer_posts_its_dominant_class_about_60_percent_of_the_time(catalog: Catalog) -> None:
    """...and its other posts show other classes of its own vertical, none dominant."""
    config = FineCorpusConfig()
    shares = []
    for inf in plan_fine_accounts(catalog, class_maps(catalog, config.seed), config)[1]:
        labels = [p.label for p in fine_influencer_posts(catalog, inf, 10_000, 3, config.style, config.seed)]
        assert {catalog.vertical_of[c] for c in labels} == {inf.vertical}, inf
        top, count = Counter(labels).most_common(1)[0]
        assert top == inf.niche and count > max(Counter(c for c in labels if c != inf.niche).values(), default=0)
        shares.append(count / len(labels))
    assert 0.58 <= mean(shares) <= 0.62 and min(shares) >= 0.5 and max(shares) <= 0.7


@pytest.mark.photos
def test_the_built_corpus_reads_back_with_both_sides(built: tuple[Path, PhotoCorpusInfo]) -> None:
    folder, info = built
    accounts = rows(folder, "accounts")
    assert Counter((a["kind"], a["side"]) for a in accounts) == {
        ("brand", "train"): 20,
        ("brand", "test"): 20,
        ("influencer", "train"): 60,
        ("influencer", "test"): 60,
    }
    assert len(rows(folder, "posts")) == info.posts and info.test_positives["min"] >= 1
    design = json.loads((folder / "corpus_info.json").read_text(encoding="utf-8"))["design"]
    assert design["kind"] == "fine" and len(design["class_maps"]) == 10


@pytest.mark.photos
def test_every_brands_partners_follow_one_map_per_vertical_pair(built: tuple[Path, PhotoCorpusInfo]) -> None:
    """A brand's partners are exactly the influencers of its partner vertical (its category),
    on its side, whose dominant class is the image of a favourite under the pair's map: the
    identity for same-vertical brands, one one-to-one map per pair for cross ones."""
    folder, _ = built
    accounts = rows(folder, "accounts")
    design = json.loads((folder / "corpus_info.json").read_text(encoding="utf-8"))["design"]
    partners: dict[str, set[str]] = defaultdict(set)
    for m in rows(folder, "matches"):
        partners[m["brand_id"]].add(m["influencer_id"])
    infs = [a for a in accounts if a["kind"] == "influencer"]
    n_cross = 0
    for b in (a for a in accounts if a["kind"] == "brand"):
        a_, b_ = b["posts_vertical"], b["category"]
        if b["brand_kind"].startswith("same:"):
            assert a_ == b_ and b["targets"] == b["prefers"]
            images = set(b["prefers"])
        else:
            n_cross += 1
            cmap = design["class_maps"][f"{a_}>{b_}"]
            assert a_ != b_ and len(set(cmap.values())) == len(cmap)
            images = {cmap[c] for c in b["prefers"]}
        want = {i["id"] for i in infs if i["side"] == b["side"] and i["category"] == b_ and i["niche"] in images}
        assert partners[b["id"]] == want and want, b["id"]
    assert n_cross == 20


@pytest.mark.photos
@pytest.mark.parametrize("seed", [0, 1])
def test_what_a_brand_posts_tells_whom_it_partners_with(catalog: Catalog, seed: int) -> None:
    """Each vertical's classes split in two halves, the same kind's and the cross kind's: no
    class is favoured by brands of both kinds, so a brand's partner vertical follows from its
    posts (if both kinds could favour any class, no ranking could tell them apart)."""
    maps = class_maps(catalog, seed)
    for a in catalog.verticals:
        same, cross = set(maps[(a, a)]), next(set(m) for (x, y), m in maps.items() if x == a and y != a)
        assert not same & cross and same | cross == set(catalog.classes[a]) and abs(len(same) - len(cross)) <= 1
    brands, _ = plan_fine_accounts(catalog, maps, replace(FineCorpusConfig(), seed=seed))
    kind_of: dict[str, set[str]] = defaultdict(set)
    for b in brands:
        for c in b.prefers:
            kind_of[c].add(b.kind.group)
    assert kind_of and all(len(k) == 1 for k in kind_of.values())


@pytest.mark.photos
@pytest.mark.parametrize("seed", [0, 13])
def test_a_held_out_brand_favours_only_classes_whose_map_the_training_side_shows(catalog: Catalog, seed: int) -> None:
    """A training brand of its pair favours the class, and a training influencer has the
    class's image as its dominant class (with seed 13, favouring a class that only a training
    brand shows would pick one whose image no training influencer has)."""
    config = replace(FineCorpusConfig(), seed=seed)
    maps = class_maps(catalog, seed)
    brands, infs = plan_fine_accounts(catalog, maps, config)
    niches = {(i.vertical, i.niche) for i in infs if i.side == "train"}
    shown: dict[str, set[str]] = defaultdict(set)
    for b in brands:
        if b.side == "train":
            m = maps[(b.kind.posts, b.kind.target)]
            shown[b.kind.name].update(c for c in b.prefers if (b.kind.target, m[c]) in niches)
    assert all(set(b.prefers) <= shown[b.kind.name] for b in brands if b.side == "test")


@pytest.mark.photos
def test_held_out_brands_and_influencers_are_the_test_side_with_test_photos(
    built: tuple[Path, PhotoCorpusInfo],
) -> None:
    folder, _ = built
    accounts = rows(folder, "accounts")
    side = {a["id"]: a["side"] for a in accounts}
    test_brands = {a["id"] for a in accounts if a["kind"] == "brand" and a["side"] == "test"}
    assert ids(folder / "test_brands.txt") == test_brands
    held = {a["id"] for a in accounts if a["kind"] == "influencer" and a["side"] == "test"}
    assert ids(folder / "test_influencers.txt") == held and held
    split = {p: s for p, _, s in (ln.split(",") for ln in (PHOTOS / "labels.csv").read_text().splitlines()[1:])}
    photos: dict[str, set[str]] = defaultdict(set)
    for p in rows(folder, "posts"):
        assert split[p["source_photo"]] == side[p["account_id"]], p["id"]
        photos[side[p["account_id"]]].add(p["source_photo"])
    assert photos["train"] and photos["test"] and not photos["train"] & photos["test"]
    assert all(side[m["brand_id"]] == side[m["influencer_id"]] for m in rows(folder, "matches"))


@pytest.mark.photos
def test_the_same_seed_gives_the_same_corpus_and_another_seed_another(
    built: tuple[Path, PhotoCorpusInfo], tmp_path: Path
) -> None:
    folder, info = built
    again = build_fine_corpus(PHOTOS, tmp_path / "again", FineCorpusConfig.quick())
    assert again.to_dict() | {"folder": ""} == info.to_dict() | {"folder": ""}
    names = ("accounts.jsonl", "posts.jsonl", "matches.jsonl", "test_brands.txt", "test_influencers.txt")
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes(), name
    other = replace(FineCorpusConfig.quick(), seed=1)
    build_fine_corpus(PHOTOS, tmp_path / "other", other)
    for name in ("accounts.jsonl", "posts.jsonl", "matches.jsonl"):
        assert (tmp_path / "other" / name).read_bytes() != (folder / name).read_bytes(), name


def per_group_auc(body: dict[str, Any], method: str, accounts: dict[str, dict[str, Any]]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for b in body["per_brand"][method]:
        groups[accounts[b["brand_id"]]["brand_kind"].split(":")[0]].append(b["auc"])
    return {g: mean(v) for g, v in groups.items()}


@pytest.mark.slow
@pytest.mark.photos
def test_train_on_the_fine_kind_reports_cauc_within_the_partner_vertical(
    built: tuple[Path, PhotoCorpusInfo], env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quick corpus through `congruence ingest` and `congruence train --test-brands`: every
    held-out brand is evaluated with a cAUC, and untrained cosine finds the same-vertical
    brands' partners and misses the cross-vertical ones (what the kind is built to show)."""
    folder, _ = built
    assert run(capsys, "ingest", str(folder), "--json", "-q")[0] == 0
    held = ["--test-brands", str(folder / "test_brands.txt")]
    held += ["--test-influencers", str(folder / "test_influencers.txt")]
    flags = ["--json", "-q", "--epochs", "1", "--variants", "product", "--no-activate"]
    code, out, err = run(capsys, "train", *flags, *held)
    assert code == 0, err
    body = json.loads(out)
    assert body["results"]["head"]["n_brands"] == 20 and isinstance(body["model"]["beats_cosine"], bool)
    assert all(b["cauc"] is not None and b["n_candidates"] == 60 for b in body["per_brand"]["pooled_cosine"])
    accounts = {a["id"]: a for a in rows(folder, "accounts")}
    cosine = per_group_auc(body, "pooled_cosine", accounts)
    assert cosine["same"] > 0.9 and cosine["cross"] < 0.7, cosine


def results(auc: float, cauc: float, r10: float, base_cauc: float = 0.9) -> dict[str, dict[str, Any]]:
    base = {"auc": 0.8, "cauc": base_cauc, "recall@10": 0.4, "recall@50": 0.7, "n_brands": 20}
    return {"pooled_cosine": base, "head": {"auc": auc, "cauc": cauc, "recall@10": r10, "n_brands": 20}}


def test_the_fine_targets_are_met_only_when_all_hold() -> None:
    met = check_targets(results(0.98, 0.93, 0.61), FINE_TARGETS, guard=True)
    assert [r["target"] for r in met][2:] == [
        "head cAUC",
        "head cAUC - pooled-cosine cAUC",
        "the guard puts the head in service (1: yes)",
    ]
    assert all(r["met"] == "yes" for r in met)
    assert [r["met"] for r in check_targets(results(0.961, 0.645, 0.461), FINE_TARGETS, guard=False)] == ["NO"] * 5
    # the issue's cosine cAUC 0.906: 0.90 is not enough when cosine does better
    assert [r["met"] for r in check_targets(results(0.98, 0.902, 0.61, 0.906), FINE_TARGETS, guard=True)][3] == "NO"
    assert check_targets(results(0.98, 0.93, 0.61), FINE_TARGETS)[4]["met"] == "NO"  # no verdict: unknown


@pytest.mark.photos
def test_the_section_reports_the_guard_and_checks_the_targets(
    built: tuple[Path, PhotoCorpusInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = built
    train_doc = {
        "results": results(0.961, 0.645, 0.461),
        "model": {"beats_cosine": False, "verdict": "held-out AUC 0.961 vs pooled cosine 0.800"},
    }
    calls: list[list[str]] = []

    def fake_cli(args: list[str], home: Path, timeout_s: float) -> CliRun:
        calls.append(args)
        return CliRun(train_doc if args[0] == "train" else {"posts_new": 0}, 0.1)

    monkeypatch.setattr(ranking, "cli", fake_cli)
    section = ranking.run(RankingConfig("ranking-photos-fine", folder, tmp_path / "home", (), FINE_TARGETS))
    assert "--test-influencers" in calls[-1] and "--test-brands" in calls[-1]
    assert section.details["targets_met"] is False
    assert any(n.startswith("guard: would keep pooled cosine") for n in section.notes)
    targets = next(t for t in section.tables if t.title == "targets")
    assert targets.rows[-1]["value"] == 0.0 and targets.rows[-1]["met"] == "NO"
