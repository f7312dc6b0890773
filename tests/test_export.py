"""Bulk shortlist export: equal to match_brand brand by brand, every format, resume, errors."""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from congruence.api.cli_export import add_parser, cmd_export
from congruence.core.errors import Busy, InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.indexer.store import Store
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, read_brand_file, run_export
from congruence.search.filters import Filters
from congruence.training.deploy import deploy

from .test_head_product import trained_head

BRANDS = ("brand_peakfit", "brand_nonna_kitchen", "brand_wanderly", "brand_happy_paws", "brand_atelier_rose",
          "brand_circuitry")
FILTERS = (Filters(), Filters.make(micro=True), Filters.make(category="travel"), Filters.make(min_followers=20_000))


def reference(engine: Engine, brands: tuple[str, ...], k: int, filters: Filters) -> list[dict[str, object]]:
    """The brute-force reference: one match_brand call per brand."""
    return [{"brand_id": b, "influencer_id": h.influencer_id, "handle": h.handle, "followers": h.followers,
             "category": h.category, "score": h.score, "rank": h.rank}
            for b in brands for h in engine.match_brand(b, k, filters)]


def read_rows(path: Path, fmt: str) -> list[dict[str, object]]:
    """Rows of an export file, typed as in the JSONL (CSV: empty followers/score -> None)."""
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with path.open(newline="") as f:
        return [{**r, "followers": int(r["followers"]) if r["followers"] else None,
                 "score": float(r["score"]) if r["score"] else None, "rank": int(r["rank"])}
                for r in csv.DictReader(f)]


def assert_same(rows: list[dict[str, object]], expected: list[dict[str, object]]) -> None:
    assert [{**r, "score": None} for r in rows] == [{**e, "score": None} for e in expected]
    for r, e in zip(rows, expected, strict=True):
        if e["score"] == float("-inf"):  # a candidate the head could not score: no score written
            assert r["score"] is None
        else:
            assert r["score"] == pytest.approx(e["score"], abs=1e-5)


@pytest.fixture
def corpus(settings: Settings, small_corpus: Path) -> Settings:
    ingest(small_corpus, settings)
    return settings


@pytest.fixture
def headed(corpus: Settings) -> Settings:
    """A head in service that disagrees with cosine retrieval, and only 8 FAISS candidates."""
    head = trained_head(corpus)
    with torch.no_grad():
        head.mix.copy_(torch.tensor([1.0, -5.0]))  # reverses the set-to-set term: rerank reorders
    deploy(corpus, head)
    return corpus.with_(candidates=8)


@pytest.mark.parametrize("filters", FILTERS, ids=["none", "micro", "travel", "min20k"])
def test_export_equals_match_brand_without_a_head(corpus: Settings, tmp_path: Path, filters: Filters) -> None:
    out = tmp_path / "shortlist.jsonl"
    with Engine(corpus) as engine:
        report = run_export(engine, ExportSpec(None, 7, "jsonl", filters), out, batch_brands=4)
        expected = reference(engine, BRANDS, 7, filters)
    assert report.brands == 6 and report.rows == len(expected) and report.skipped == () and report.resumed_brands == 0
    assert_same(read_rows(out, "jsonl"), expected)


@pytest.mark.parametrize("filters", FILTERS[:3], ids=["none", "micro", "travel"])
def test_export_equals_match_brand_with_the_head_reranking(headed: Settings, tmp_path: Path,
                                                           filters: Filters) -> None:
    with Store.open(headed) as store:  # one influencer the head cannot score: ranked last, no score
        store.conn.execute("UPDATE account_vectors SET post_vectors = NULL WHERE account_id = 'fitness_creator_01'"
                           " AND space LIKE 'head:%'")
    with Engine(headed) as engine:
        assert engine.snapshot.head is not None
        brands = BRANDS[::-1]
        for k in (5, 8):  # top 5 of the 8 reranked candidates; all 8, the unscorable one last
            out = tmp_path / f"top{k}.csv"
            report = run_export(engine, ExportSpec(brands, k, "csv", filters), out, batch_brands=4)
            expected = reference(engine, brands, k, filters)
            assert report.rows == len(expected)
            assert_same(read_rows(out, "csv"), expected)
        cosine_order = [h.influencer_id for h in engine._search(
            engine.snapshot, engine._account_vector(engine.snapshot, "brand_peakfit", "brand"), 8, filters)]
    if not filters.active:
        # the reversed head really reorders, and the unscorable influencer comes last
        assert [r["influencer_id"] for r in expected if r["brand_id"] == "brand_peakfit"] != cosine_order
        assert {"brand_id": "brand_peakfit", "influencer_id": "fitness_creator_01", "rank": 8, "score": float("-inf")} \
            .items() <= next(r for r in expected if r["influencer_id"] == "fitness_creator_01"
                             and r["brand_id"] == "brand_peakfit").items()


def test_filters_are_applied(corpus: Settings, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    with Engine(corpus) as engine:
        table = engine.snapshot.table
        run_export(engine, ExportSpec(("brand_peakfit",), 18, "jsonl", Filters.make(category="food", micro=True)),
                   out)
    rows = read_rows(out, "jsonl")
    passing = {i for i, c, f in zip(table.ids, table.categories, table.followers, strict=True)
               if c == "food" and 5_000 <= f <= 100_000}
    assert rows and {r["influencer_id"] for r in rows} == passing
    assert len(rows) == 2 and {r["category"] for r in rows} == {"food"}
    assert all(5_000 <= int(r["followers"]) <= 100_000 for r in rows)  # type: ignore[call-overload]


def test_every_format_holds_the_same_rows(corpus: Settings, tmp_path: Path) -> None:
    with Engine(corpus) as engine:
        expected = reference(engine, BRANDS, 18, Filters())
        for fmt in ("csv", "jsonl", "parquet"):
            report = run_export(engine, ExportSpec(None, 18, fmt), tmp_path / "out" / f"s.{fmt}", batch_brands=5)
            assert report.rows == 6 * 18
            assert_same(read_rows(tmp_path / "out" / f"s.{fmt}", fmt), expected)
    csv_rows, jsonl_rows, parquet_rows = (read_rows(tmp_path / "out" / f"s.{f}", f) for f in ("csv", "jsonl", "parquet"))
    assert csv_rows == jsonl_rows == parquet_rows  # scores too: every format round-trips the float exactly
    assert (tmp_path / "out" / "s.csv").read_text().splitlines()[0] == \
        "brand_id,influencer_id,handle,followers,category,score,rank"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.csv", "s.jsonl", "s.parquet"]


def test_an_interrupted_export_resumes_from_its_finished_chunks(corpus: Settings, tmp_path: Path) -> None:
    tmp_path /= "out"
    out, whole = tmp_path / "s.csv", tmp_path / "whole.csv"
    spec = ExportSpec(None, 10, "csv", Filters.make(micro=True))
    calls: list[tuple[int, int]] = []

    def stop_after_first_chunk(done: int, total: int) -> None:
        calls.append((done, total))
        if done > 0:
            raise KeyboardInterrupt

    with Engine(corpus) as engine:
        with pytest.raises(KeyboardInterrupt):
            run_export(engine, spec, out, progress=stop_after_first_chunk, batch_brands=4)
        assert calls == [(0, 6), (4, 6)]
        assert not out.exists() and not out.with_name("s.csv.tmp").exists()
        parts = sorted(p.name for p in (tmp_path / "s.csv.parts").iterdir())
        assert parts == ["chunk-000000.csv", "chunk-000000.json", "spec.json"]
        # another batch size on resume: the first run's chunking is kept
        calls.clear()
        report = run_export(engine, spec, out, progress=lambda d, t: calls.append((d, t)), batch_brands=2)
        assert report.resumed_brands == 4 and report.brands == 6 and calls == [(4, 6), (6, 6)]
        full = run_export(engine, spec, whole, batch_brands=256)
    assert out.read_bytes() == whole.read_bytes() and report.rows == full.rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "whole.csv"]


def test_a_rerun_with_another_spec_is_refused_until_restarted(corpus: Settings, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"

    def interrupt(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with Engine(corpus) as engine:
        with pytest.raises(KeyboardInterrupt):
            run_export(engine, ExportSpec(None, 10, "jsonl"), out, progress=interrupt, batch_brands=3)
        with pytest.raises(InvalidInput, match=r"s.jsonl.parts holds an unfinished export of something else "
                                               r"\(filters, k differ\): rerun with the same options"):
            run_export(engine, ExportSpec(None, 5, "jsonl", Filters.make(micro=True)), out)
        report = run_export(engine, ExportSpec(None, 5, "jsonl"), out, restart=True)
    assert report.resumed_brands == 0 and report.rows == 30 and len(read_rows(out, "jsonl")) == 30


def test_a_second_export_to_the_same_file_is_refused_while_one_runs(corpus: Settings, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    out.with_name("s.csv.parts").mkdir()
    with out.with_name(".s.csv.parts.lock").open("a") as held, Engine(corpus) as engine:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(Busy, match=r"another export is writing .*s\.csv$"):
            run_export(engine, ExportSpec(None, 3), out)
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        assert run_export(engine, ExportSpec(None, 3), out).rows == 18


def test_brands_without_vectors_are_reported_not_fatal(corpus: Settings, tmp_path: Path) -> None:
    with Store.open(corpus) as store:
        store.conn.execute("INSERT INTO accounts (id, kind, handle, row_hash) VALUES ('brand_new', 'brand', 'n', 'x')")
    with Engine(corpus) as engine:
        report = run_export(engine, ExportSpec(None, 3, "csv"), tmp_path / "s.csv")
    assert report.brands == 7 and report.rows == 18
    assert report.skipped == (("brand_new", "no embedded posts to match on"),)
    assert report.to_dict()["skipped"] == [{"brand_id": "brand_new", "reason": "no embedded posts to match on"}]


def test_unknown_brands_in_the_file_are_refused_by_line(corpus: Settings, tmp_path: Path) -> None:
    tmp_path /= "out"
    tmp_path.mkdir()
    brands = tmp_path / "brands.txt"
    brands.write_text("# shortlist\nbrand_peakfit\n\nbrand_nobody\nbrand_peakfit\nfood_creator_00\n")
    out = tmp_path / "s.csv"
    with Store.open(corpus) as store:
        assert read_brand_file(brands) == ("brand_peakfit", "brand_nobody", "food_creator_00")
        with pytest.raises(NotFound) as e:
            read_brand_file(brands, store)
    assert str(e.value) == (f"{brands}:4: unknown brand 'brand_nobody'; "
                            f"{brands}:6: 'food_creator_00' is an influencer, not a brand")
    ns = cli_args("--brands", str(brands), "--out", str(out))
    with pytest.raises(NotFound, match=r"brands\.txt:4: unknown brand 'brand_nobody'"):
        cmd_export(ns, corpus)
    with Engine(corpus) as engine, pytest.raises(NotFound, match=r"^brands\[1\]: unknown brand 'x'$"):
        run_export(engine, ExportSpec(("brand_peakfit", "x")), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brands.txt"]
    brands.write_text("\n# none\n")
    with pytest.raises(InvalidInput, match=r"brands\.txt: no brand ids"):
        read_brand_file(brands)


def test_spec_is_checked_at_the_boundary() -> None:
    for k in (0, 1001, 2.0, True):
        with pytest.raises(InvalidInput) as e:
            ExportSpec(k=k)  # type: ignore[arg-type]
        assert str(e.value) == f"k must be a whole number from 1 to 1000, got {k!r}"
    with pytest.raises(InvalidInput) as e:
        ExportSpec(fmt="xlsx")
    assert str(e.value) == "format must be one of csv, jsonl, parquet, got 'xlsx'"
    with pytest.raises(InvalidInput, match=r"^brands: expected at least one brand id$"):
        ExportSpec(brands=())


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["export", *argv])


def test_cli_export_json(corpus: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    brands = tmp_path / "b.txt"
    brands.write_text("brand_wanderly\nbrand_circuitry\n")
    out = tmp_path / "out" / "s.parquet"
    ns = cli_args("--brands", str(brands), "-k", "4", "--format", "parquet", "--out", str(out), "--micro",
                  "--batch-brands", "1", "--json")
    assert cmd_export(ns, corpus) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["path"] == str(out) and body["brands"] == 2 and body["resumed_brands"] == 0
    rows = read_rows(out, "parquet")
    assert body["rows"] == len(rows) and rows[0]["brand_id"] == "brand_wanderly"
    assert all(5_000 <= int(r["followers"]) <= 100_000 for r in rows)  # type: ignore[call-overload]
    assert cmd_export(cli_args("--out", str(tmp_path / "all.csv"), "-k", "2"), corpus) == 0
    assert "wrote 12 rows for 6 brands" in capsys.readouterr().out
