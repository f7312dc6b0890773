"""The ranking benchmark's runner (bench/ranking.py): targets, tables and the cache's corpus swap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import ranking
from bench.ranking import CliRun, Targets, check_targets, metric_rows, sync_store
from bench.ranking_breakdown import breakdown


def metrics(auc: float, r10: float) -> dict[str, float | int | None]:
    return {"auc": auc, "cauc": None, "recall@10": r10, "recall@50": 0.5, "medr": 1.0, "mrr": 0.5, "n_brands": 4}


def test_targets_met_and_missed() -> None:
    results = {"pooled_cosine": metrics(0.7, 0.2), "head": metrics(0.96, 0.31)}
    rows = check_targets(results, Targets())
    assert [r["met"] for r in rows] == ["yes", "yes"]
    assert rows[1]["value"] == pytest.approx(1.55)
    rows = check_targets({"pooled_cosine": metrics(0.7, 0.2), "head": metrics(0.94, 0.29)}, Targets())
    assert [r["met"] for r in rows] == ["NO", "NO"]


def test_targets_without_a_head_or_baseline_recall_are_missed() -> None:
    assert [r["met"] for r in check_targets({}, Targets())] == ["NO", "NO"]
    rows = check_targets({"pooled_cosine": metrics(0.5, 0.0), "head": metrics(0.99, 0.3)}, Targets())
    assert rows[1]["value"] is None and rows[1]["met"] == "NO"


def test_metric_rows_in_method_order() -> None:
    rows = metric_rows({"head": metrics(0.9, 0.3), "extra": metrics(0.5, 0.1), "random": metrics(0.5, 0.0)})
    assert [r["method"] for r in rows] == ["random", "head", "extra"]
    assert rows[1]["AUC"] == 0.9 and rows[1]["R@10"] == 0.3


def write_corpus(folder: Path, ids: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": i, "kind": "influencer", "handle": i, "category": "pets"} for i in ids]
    (folder / "accounts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_sync_store_deletes_the_previous_corpus_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_cli(args: list[str], home: Path, timeout_s: float) -> CliRun:
        calls.append(args)
        return CliRun({"deleted": len(args) - 3} if args[0] == "delete" else {"posts_new": 0}, 0.1)

    monkeypatch.setattr(ranking, "cli", fake_cli)
    home = tmp_path / "home"
    first = write_corpus(tmp_path / "a", ["x", "y"])
    assert sync_store(first, home, 10)[1] == 0
    assert sync_store(first, home, 10)[1] == 0
    assert [c[0] for c in calls] == ["ingest", "ingest"]
    second = write_corpus(tmp_path / "b", ["y", "z"])
    calls.clear()
    _, deleted = sync_store(second, home, 10)
    assert deleted == 2
    assert calls[0] == ["delete", "x", "y", "--json", "--missing-ok"] and calls[1][0] == "ingest"
    marker = json.loads((home / ranking.MARKER).read_text())
    assert marker["accounts"] == ["y", "z"] and marker["fingerprint"] == ranking.fingerprint(second)


def test_an_interrupted_ingest_is_cleaned_up_next_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_cli(args: list[str], home: Path, timeout_s: float) -> CliRun:
        raise RuntimeError("congruence ingest exited 1: boom")

    monkeypatch.setattr(ranking, "cli", failing_cli)
    home = tmp_path / "home"
    corpus = write_corpus(tmp_path / "a", ["x"])
    with pytest.raises(RuntimeError, match="boom"):
        sync_store(corpus, home, 10)
    marker = json.loads((home / ranking.MARKER).read_text())
    assert marker == {"fingerprint": None, "accounts": ["x"]}


def test_breakdown_averages_the_cli_per_brand_metrics_per_kind(tmp_path: Path) -> None:
    rows = [
        {"id": "d1", "kind": "brand", "brand_kind": "direct:pets"},
        {"id": "c1", "kind": "brand", "brand_kind": "cross:food_drink>pets"},
        {"id": "c2", "kind": "brand", "brand_kind": "cross:food_drink>pets"},
    ]
    (tmp_path / "accounts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def brand(b: str, auc: float, cauc: float | None) -> dict[str, object]:
        return {
            "brand_id": b,
            "n_positives": 4,
            "auc": auc,
            "cauc": cauc,
            "recall_at_10": 0.5,
            "recall_at_50": 1.0,
            "reciprocal_rank": 1.0,
        }

    doc = {"per_brand": {"head": [brand("c1", 0.9, None), brand("c2", 0.7, 0.6), brand("d1", 1.0, 1.0)]}}
    got = {r["brands"]: r for r in breakdown(tmp_path, doc)}
    assert got["cross"]["AUC"] == pytest.approx(0.8) and got["cross"]["cAUC"] == pytest.approx(0.6)
    assert got["cross"]["n"] == 2 and got["direct"]["n"] == 1
    assert breakdown(tmp_path, {}) == []


def test_the_cold_start_products_targets() -> None:
    """The product for a brand with no known partner (``head+category``): an AUC to reach on the
    brand-tag benchmark, and at most so much AUC lost against the head on the photos."""
    results = {"pooled_cosine": metrics(0.6, 0.01), "head": metrics(0.68, 0.02), "head+category": metrics(0.76, 0.03)}
    rows = check_targets(results, Targets(0.8, 3.0, product_auc=0.74))
    assert rows[2]["target"].startswith("product") and rows[2]["met"] == "yes"
    rows = check_targets({**results, "head+category": metrics(0.73, 0.03)}, Targets(0.8, 3.0, product_auc=0.74))
    assert rows[2]["met"] == "NO"
    lost = check_targets({**results, "head+category": metrics(0.665, 0.03)}, Targets(product_loss=0.01))
    assert lost[2]["value"] == pytest.approx(0.015) and lost[2]["met"] == "NO"
    assert check_targets(results, Targets(product_loss=0.01))[2]["met"] == "yes"
    # no blend learned: the product is the head, which loses nothing against itself
    alone = check_targets({k: v for k, v in results.items() if k != "head+category"}, Targets(product_loss=0.01))
    assert alone[2]["value"] == 0 and alone[2]["met"] == "yes"
