"""Bulk shortlist export: equal to match_brand brand by brand, every format, resume, errors."""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict
from datetime import UTC
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import torch

from congruence.api.export_jobs import ExportJobs, JobState
from congruence.cli.export import add_parser, cmd_export
from congruence.core.errors import Busy, InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.indexer.index import VectorIndex
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, read_brand_file, run_export
from congruence.search.export_rank import BatchRanker
from congruence.search.filters import Filters
from congruence.store import account_metrics as metrics_store
from congruence.store import collaborations as collab_graph
from congruence.store.list_views import in_lists
from congruence.store.records import Store
from congruence.training.deploy import deploy, publish_current
from congruence.training.model import CongruenceHead

from .conftest import run
from .server import serving
from .test_head_product import trained_head

ROOT = Path(__file__).resolve().parents[1]

BRANDS = (
    "brand_peakfit",
    "brand_nonna_kitchen",
    "brand_wanderly",
    "brand_happy_paws",
    "brand_atelier_rose",
    "brand_circuitry",
)
FILTERS = (Filters(), Filters.make(micro=True), Filters.make(category="travel"), Filters.make(min_followers=20_000))


METRICS = [
    "engagement_rate",
    "posts_per_week",
    "sponsored_share",
    "sponsored_ratio",
    "follower_growth",
    "authenticity_flags",
]


def metric_columns(store: Store, ids: list[str]) -> dict[str, dict[str, object]]:
    """Account id -> its export's metric columns, from the stored metrics (all null when none)."""
    got = metrics_store.read(store, ids)

    def row(m: metrics_store.AccountMetrics | None) -> dict[str, object]:
        if m is None:
            return dict.fromkeys(METRICS)
        return {
            "engagement_rate": m.engagement_rate,
            "posts_per_week": m.posts_per_week,
            "sponsored_share": m.sponsored_share,
            "sponsored_ratio": m.sponsored_ratio,
            "follower_growth": m.growth_monthly,
            "authenticity_flags": ";".join(sorted({f.signal for f in m.flags})),
        }

    return {i: row(got.get(i)) for i in ids}


def collab_columns(store: Store, ids: list[str], filters: Filters) -> dict[str, dict[str, object]]:
    """Account id -> its export's collaboration columns, from ``edges_from`` alone: the distinct
    handles of its edges, and its edges with the handles the filters name (None: none named)."""
    named = tuple(dict.fromkeys((*filters.worked_with, *filters.not_worked_with)))

    def row(account: str) -> dict[str, object]:
        edges = collab_graph.edges_from(store, account)
        mine = sorted((named.index(e.handle), collab_graph.KINDS.index(e.kind), e) for e in edges if e.handle in named)
        text = ";".join(
            f"{e.handle}:{e.kind}:{e.posts}:{e.last_at.astimezone(UTC).date() if e.last_at else ''}" for *_, e in mine
        )
        return {"collaborations": len({e.handle for e in edges}), "collaborated_with": text if named else None}

    return {i: row(i) for i in ids}


def reference(engine: Engine, brands: tuple[str, ...], k: int, filters: Filters) -> list[dict[str, object]]:
    """The brute-force reference: one match_brand call per brand, with each influencer's metrics
    and collaboration columns."""
    rows = [
        {
            "brand_id": b,
            "influencer_id": h.influencer_id,
            "handle": h.handle,
            "followers": h.followers,
            "category": h.category,
            "score": h.score,
            "rank": h.rank,
        }
        for b in brands
        for h in engine.match_brand(b, k, filters)
    ]
    with engine.reading() as store:
        metrics = metric_columns(store, [str(r["influencer_id"]) for r in rows])
        collabs = collab_columns(store, [str(r["influencer_id"]) for r in rows], filters)
        listed = {b: in_lists(store, b, [str(r["influencer_id"]) for r in rows if r["brand_id"] == b]) for b in brands}
    return [
        r
        | metrics[str(r["influencer_id"])]
        | collabs[str(r["influencer_id"])]
        | {
            "in_lists": ";".join(
                f"{o.list}:{o.status}" for o in listed[str(r["brand_id"])].get(str(r["influencer_id"]), ())
            )
        }
        for r in rows
    ]


def read_rows(path: Path, fmt: str) -> list[dict[str, object]]:
    """Rows of an export file, typed as in the JSONL (CSV: empty followers/score -> None)."""
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with path.open(newline="") as f:
        return [
            {
                **r,
                "followers": int(r["followers"]) if r["followers"] else None,
                "score": float(r["score"]) if r["score"] else None,
                "rank": int(r["rank"]),
                **{c: float(r[c]) if r[c] else None for c in METRICS[:5]},
                # "": no flag raised (every account here has metrics; CSV cannot tell null from "")
                "authenticity_flags": r["authenticity_flags"],
                "collaborations": int(r["collaborations"]),
                "collaborated_with": r["collaborated_with"] or None,  # these tests name no handle
                "in_lists": r["in_lists"],
            }
            for r in csv.DictReader(f)
        ]


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
    """A head in service that disagrees with cosine retrieval, and only 8 FAISS candidates; it
    has a partner memory (seeded, weighted up), so exports score brands in batches with it."""
    head = trained_head(corpus)
    with torch.no_grad():
        head.mix.copy_(torch.tensor([1.0, -5.0]))  # reverses the set-to-set term: rerank reorders
    gen = torch.Generator().manual_seed(0)

    def unit(n: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(n, head.config.d_model, generator=gen), dim=-1)

    owners = torch.arange(3).repeat_interleave(3)
    head.set_memory(unit(9), owners, unit(9), owners, 5.0)
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
def test_export_equals_match_brand_with_the_head_reranking(headed: Settings, tmp_path: Path, filters: Filters) -> None:
    with Store.open(headed) as store:  # one influencer the head cannot score: ranked last, no score
        store.conn.execute(
            "UPDATE account_vectors SET post_vectors = NULL WHERE account_id = 'fitness_creator_01'"
            " AND space LIKE 'head:%'"
        )
    publish_current(headed)  # changed behind the writers' back: published as a writer would
    with Engine(headed) as engine:
        assert engine.snapshot.head is not None and engine.snapshot.head.memory_brands == 3
        brands = BRANDS[::-1]
        for k in (5, 8):  # top 5 of the 8 reranked candidates; all 8, the unscorable one last
            out = tmp_path / f"top{k}.csv"
            report = run_export(engine, ExportSpec(brands, k, "csv", filters), out, batch_brands=4)
            expected = reference(engine, brands, k, filters)
            assert report.rows == len(expected)
            assert_same(read_rows(out, "csv"), expected)
        snap = engine.current()  # FAISS alone: the brand's vector without its posts, so no rerank
        _, found = engine.retrieve(snap, engine.entry(snap, "brand_peakfit", "brand").vector[None], 8, filters)
        cosine_order = [snap.table.ids[r] for r in snap.rows(found[0][found[0] >= 0])]
    if not filters.active:
        # the reversed head really reorders, and the unscorable influencer comes last
        assert [r["influencer_id"] for r in expected if r["brand_id"] == "brand_peakfit"] != cosine_order
        assert {
            "brand_id": "brand_peakfit",
            "influencer_id": "fitness_creator_01",
            "rank": 8,
            "score": float("-inf"),
        }.items() <= next(
            r for r in expected if r["influencer_id"] == "fitness_creator_01" and r["brand_id"] == "brand_peakfit"
        ).items()


@pytest.mark.parametrize("with_head", [False, True], ids=["cosine", "head"])
def test_export_equals_match_brand_on_a_compressed_index(corpus: Settings, tmp_path: Path, with_head: bool) -> None:
    """Past both thresholds the index is HNSW over 8-bit codes; every brand's exported rows
    are what match_brand answers, scores included (without a head both re-score the
    compressed candidates exactly; with one, both rerank the same candidates)."""
    if with_head:
        deploy(corpus, trained_head(corpus, epochs=2))
    small = corpus.with_(exact_threshold=5, compress_threshold=10, candidates=12)
    publish_current(small)  # the writers' layout: past both thresholds
    with Engine(small) as engine:
        assert (engine.snapshot.index.kind, engine.snapshot.index.codec) == ("hnsw", "sq8")
        assert (engine.snapshot.head is not None) == with_head
        for k, filters in ((3, Filters()), (10, Filters()), (18, Filters()), (5, Filters.make(micro=True))):
            out = tmp_path / f"top{k}-{filters.active}.jsonl"
            report = run_export(engine, ExportSpec(None, k, "jsonl", filters), out, batch_brands=4)
            expected = reference(engine, BRANDS, k, filters)
            assert report.rows == len(expected) and report.skipped == ()
            rows = read_rows(out, "jsonl")
            assert rows == [{**e, "score": r["score"]} for r, e in zip(rows, expected, strict=True)]
            assert [r["score"] for r in rows] == [e["score"] for e in expected]  # the same floats, not close ones


def test_brands_go_through_faiss_and_the_head_in_batches(
    headed: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches: list[int] = []
    passes: list[int] = []
    search, score = VectorIndex.search, CongruenceHead.score
    with Engine(headed) as engine:
        assert engine.snapshot.head is not None
        monkeypatch.setattr(
            VectorIndex, "search", lambda self, q, *a, **kw: searches.append(len(q)) or search(self, q, *a, **kw)
        )
        monkeypatch.setattr(
            CongruenceHead,
            "score",
            lambda self, b, *a, **kw: passes.append(int(b.shape[0])) or score(self, b, *a, **kw),
        )
        report = run_export(engine, ExportSpec(None, 5, "csv"), tmp_path / "s.csv", batch_brands=3)
        monkeypatch.undo()
        expected = reference(engine, BRANDS, 5, Filters())
    assert searches == [3, 3]  # one FAISS search per batch of 3 brands, not one per brand
    assert passes == [3, 3]  # one forward pass of the head per batch, scoring 3 brands' candidates
    assert report.rows == 30
    assert_same(read_rows(tmp_path / "s.csv", "csv"), expected)


def test_filters_are_applied(corpus: Settings, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    with Engine(corpus) as engine:
        table = engine.snapshot.table
        run_export(engine, ExportSpec(("brand_peakfit",), 18, "jsonl", Filters.make(category="food", micro=True)), out)
    rows = read_rows(out, "jsonl")
    passing = {
        i
        for i, c, f in zip(table.ids, table.categories, table.followers, strict=True)
        if c == "food" and 5_000 <= f <= 100_000
    }
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
    csv_rows, jsonl_rows, parquet_rows = (
        read_rows(tmp_path / "out" / f"s.{f}", f) for f in ("csv", "jsonl", "parquet")
    )
    assert csv_rows == jsonl_rows == parquet_rows  # scores too: every format round-trips the float exactly
    assert (tmp_path / "out" / "s.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
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
        with pytest.raises(
            InvalidInput,
            match=r"s.jsonl.parts holds an unfinished export of something else "
            r"\(filters, k differ\): rerun with the same options",
        ):
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
    assert str(e.value) == (
        f"{brands}:4: unknown brand 'brand_nobody'; {brands}:6: 'food_creator_00' is an influencer, not a brand"
    )
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
    with pytest.raises(InvalidInput, match=r"^brands expects at least one brand id$"):
        ExportSpec(brands=())


def test_shards_need_a_ray_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONGRUENCE_HOME", str(tmp_path / "home"))
    out = ("export", "--out", str(tmp_path / "s.csv"))
    assert run(capsys, *out, "--shards", "4") == (
        1,
        "",
        "error: --shards needs --ray-address: the Ray cluster whose Serve runs the shards\n",
    )
    assert run(capsys, *out, "--shards", "-1", "--ray-address", "local") == (
        1,
        "",
        "error: --shards must be at least 1, got -1\n",
    )
    assert not (tmp_path / "home").exists()  # refused before the store was opened


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["export", *argv])


def test_cli_export_json(corpus: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    brands = tmp_path / "b.txt"
    brands.write_text("brand_wanderly\nbrand_circuitry\n")
    out = tmp_path / "out" / "s.parquet"
    ns = cli_args(
        "--brands",
        str(brands),
        "-k",
        "4",
        "--format",
        "parquet",
        "--out",
        str(out),
        "--micro",
        "--batch-brands",
        "1",
        "--json",
    )
    assert cmd_export(ns, corpus) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["path"] == str(out) and body["brands"] == 2 and body["resumed_brands"] == 0
    rows = read_rows(out, "parquet")
    assert body["rows"] == len(rows) and rows[0]["brand_id"] == "brand_wanderly"
    assert all(5_000 <= int(r["followers"]) <= 100_000 for r in rows)  # type: ignore[call-overload]
    assert cmd_export(cli_args("--out", str(tmp_path / "all.csv"), "-k", "2"), corpus) == 0
    assert "wrote 12 rows for 6 brands" in capsys.readouterr().out


# -- the exact columns, the CLI's filters and progress ----------------------------------------
COLLABS = ["collaborations", "collaborated_with"]
COLUMNS = [
    "brand_id",
    "influencer_id",
    "handle",
    "followers",
    "category",
    "score",
    "rank",
    *METRICS,
    *COLLABS,
    "in_lists",
]


def test_each_format_has_exactly_the_fourteen_columns_in_order(corpus: Settings, tmp_path: Path) -> None:
    with Engine(corpus) as engine:
        for fmt in ("csv", "jsonl", "parquet"):
            run_export(engine, ExportSpec(None, 3, fmt), tmp_path / f"s.{fmt}")
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == 18 and all(list(json.loads(line)) == COLUMNS for line in lines)
    schema = pq.read_schema(tmp_path / "s.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("brand_id", "string"),
        ("influencer_id", "string"),
        ("handle", "string"),
        ("followers", "int64"),
        ("category", "string"),
        ("score", "double"),
        ("rank", "int32"),
        ("engagement_rate", "double"),
        ("posts_per_week", "double"),
        ("sponsored_share", "double"),
        ("sponsored_ratio", "double"),
        ("follower_growth", "double"),
        ("authenticity_flags", "string"),
        ("collaborations", "int32"),
        ("collaborated_with", "string"),
        ("in_lists", "string"),
    ]
    rows = read_rows(tmp_path / "s.parquet", "parquet")  # one row per (brand, rank), ranks 1..k
    assert sorted((r["brand_id"], r["rank"]) for r in rows) == sorted((b, i) for b in BRANDS for i in (1, 2, 3))


def test_cli_category_and_micro_filters_and_progress_lines(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(small_corpus, env)
    out = tmp_path / "s.jsonl"
    code, stdout, stderr = run(
        capsys,
        "export",
        "--category",
        "food",
        "--micro",
        "-k",
        "4",
        "--format",
        "jsonl",
        "--batch-brands",
        "1",
        "--out",
        str(out),
    )
    assert code == 0 and "wrote" in stdout
    with Engine(env) as engine:
        expected = reference(engine, BRANDS, 4, Filters.make(category="food", micro=True))
    assert len(expected) == 12 and {e["category"] for e in expected} == {"food"}  # 2 pass the filter
    assert_same(read_rows(out, "jsonl"), expected)
    # not a terminal: a line at each tenth of the brands (6 brands, one a chunk: every chunk),
    # with the rate and the time left once brands are done
    lines = stderr.splitlines()
    assert lines[0] == "exporting: 0/6 brands (0 %)" and len(lines) == 7, lines
    for d, line in enumerate(lines[1:], 1):
        assert re.fullmatch(
            rf"exporting: {d}/6 brands \({100 * d // 6} %\), [\d,.]+ brands/s, ETA \d+:\d\d:\d\d", line
        ), line


# -- a process killed mid-export --------------------------------------------------------------
# Runs `congruence` with two hooks: every batch of brands ranked is logged, and the file named
# STOP_AT is left half written (its temporary file, as a crash mid-write would leave it) while
# the process waits to be killed.
KILLABLE = r"""
import io, os, sys, time
from pathlib import Path
import congruence.search.export_files as files
import congruence.search.export_rank as export_rank

stop_at, ranked_log, stopped = os.environ["STOP_AT"], Path(os.environ["RANKED_LOG"]), Path(os.environ["STOPPED"])
write_atomic, rank = files.write_atomic, export_rank.BatchRanker.rank

def logged_rank(self, brands):
    with ranked_log.open("a") as f:
        f.write("".join(b + "\n" for b in brands))
    return rank(self, brands)

def stopping_write_atomic(path, write):
    if path.name != stop_at:
        return write_atomic(path, write)
    def half(f):
        buf = io.BytesIO()
        write(buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.fsync(f.fileno())
        stopped.touch()
        time.sleep(600)
    return write_atomic(path, half)

files.write_atomic = stopping_write_atomic
export_rank.BatchRanker.rank = logged_rank
from congruence.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _kill_when_stopped(settings: Settings, argv: list[str], stop_at: str, logs: Path, name: str) -> list[str]:
    """Run the export until it stops at ``stop_at``, SIGKILL it; the brands it ranked."""
    env = {
        **os.environ,
        "CONGRUENCE_HOME": str(settings.home),
        "DATABASE_URL": str(settings.database_url),
        "STOP_AT": stop_at,
        "RANKED_LOG": str(logs / f"{name}.ranked"),
        "STOPPED": str(logs / f"{name}.stopped"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not (logs / f"{name}.stopped").exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the export never reached " + stop_at
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    return (logs / f"{name}.ranked").read_text().split()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_killed_export_resumes_to_the_bytes_of_an_uninterrupted_one(
    env: Settings,
    small_corpus: Path,
    tmp_path: Path,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ingest(small_corpus, env)
    outdir, logs = tmp_path / "out", tmp_path / "logs"
    outdir.mkdir()
    logs.mkdir()
    out, whole = outdir / f"s.{fmt}", tmp_path / f"whole.{fmt}"
    with Engine(env) as engine:
        run_export(engine, ExportSpec(None, 5, fmt, Filters.make(micro=True)), whole, batch_brands=1)
        order = engine.brand_ids()
    assert len(order) == 6
    argv = ["export", "-k", "5", "--micro", "--format", fmt, "--batch-brands", "1", "--json", "--out", str(out)]

    # 1: killed while writing the third chunk: two whole chunks stay, the third is a torn .tmp
    ranked = _kill_when_stopped(env, argv, f"chunk-000002.{fmt}", logs, "first")
    assert ranked == order[:3]
    parts = out.with_name(out.name + ".parts")
    assert sorted(p.name for p in outdir.iterdir()) == [f".s.{fmt}.parts.lock", f"s.{fmt}.parts"]
    assert sorted(p.name for p in parts.iterdir()) == sorted(
        [
            f"chunk-000000.{fmt}",
            "chunk-000000.json",
            f"chunk-000001.{fmt}",
            "chunk-000001.json",
            f"chunk-000002.{fmt}.tmp",
            "spec.json",
        ]
    )

    # 2: the rerun skips the two finished brands, ranks the other four, and is killed while
    # assembling: the final name still does not exist, only a torn <out>.tmp
    ranked = _kill_when_stopped(env, argv, out.name, logs, "second")
    assert ranked == order[2:]
    assert not out.exists()
    torn = out.with_name(out.name + ".tmp")
    assert 0 < torn.stat().st_size < whole.stat().st_size

    # 3: the last rerun ranks nothing (every chunk is finished) and writes the file
    seen: list[str] = []
    rank = BatchRanker.rank
    monkeypatch.setattr(BatchRanker, "rank", lambda self, brands: seen.extend(brands) or rank(self, brands))
    code, stdout, stderr = run(capsys, *argv)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert seen == [] and report["resumed_brands"] == 6 and report["brands"] == 6
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in outdir.iterdir()) == [f"s.{fmt}"]  # no parts, lock or temporary file left


# -- Ray is optional --------------------------------------------------------------------------
WITHOUT_RAY = r"""
import sys
sys.modules["ray"] = None  # `import ray` raises ImportError from here on
from congruence.cli.main import main
code = main(sys.argv[1:])
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and (m == "ray" or m.startswith("ray.")))
assert not loaded, loaded
sys.exit(code)
"""


def test_without_ray_address_ingest_and_export_run_without_ray(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "CONGRUENCE_HOME": str(settings.home), "DATABASE_URL": str(settings.database_url)}
    for argv in (
        ["ingest", str(small_corpus), "--json"],
        ["export", "-k", "3", "--format", "parquet", "--out", str(tmp_path / "s.parquet"), "--json"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_RAY, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["rows"] == 18 and len(read_rows(tmp_path / "s.parquet", "parquet")) == 18
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("ray")]  # an extra, not a dependency
    assert project["optional-dependencies"]["ray"] == ["ray[data,client,serve]>=2.10"]


# -- the same job behind POST /v1/exports ------------------------------------------------------
def test_the_api_job_writes_the_bytes_the_cli_writes(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(small_corpus, env)
    with serving(env, auth=False) as url:
        for fmt in ("csv", "jsonl", "parquet"):
            body = {
                "brands": ["brand_wanderly", "brand_peakfit"],
                "k": 4,
                "format": fmt,
                "micro": True,
                "category": "food",
            }
            job = httpx.post(url + "/v1/exports", json=body, timeout=60).json()
            deadline = time.monotonic() + 120
            while job["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(0.1)
                job = httpx.get(f"{url}/v1/exports/{job['id']}", timeout=60).json()
            assert job["status"] == "done" and (job["done_brands"], job["total_brands"]) == (2, 2), job
            got = httpx.get(url + job["download_url"], timeout=60).content
            brands = tmp_path / "brands.txt"
            brands.write_text("brand_wanderly\nbrand_peakfit\n")
            out = tmp_path / f"cli.{fmt}"
            assert (
                run(
                    capsys,
                    "export",
                    "--brands",
                    str(brands),
                    "-k",
                    "4",
                    "--format",
                    fmt,
                    "--micro",
                    "--category",
                    "food",
                    "--out",
                    str(out),
                )[0]
                == 0
            )
            assert got == out.read_bytes() and job["rows"] == len(read_rows(out, fmt)) > 0


def test_an_api_job_cut_off_by_a_restart_resumes_from_its_chunks(
    corpus: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ExportSpec(None, 5, "csv")
    root = tmp_path / "exports"
    job = JobState(
        "0123456789abcdef", "running", "csv", 5, None, {"category": None, "min_followers": None, "max_followers": None}
    )

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with Engine(corpus) as engine:
        run_export(engine, spec, tmp_path / "whole.csv")
        # the server stopped mid-job: job.json says running, the parts hold one finished chunk
        (root / job.id).mkdir(parents=True)
        (root / job.id / "job.json").write_text(json.dumps(asdict(job)))
        with pytest.raises(KeyboardInterrupt):
            run_export(engine, spec, root / job.id / "shortlist.csv", progress=stop_after_first_chunk, batch_brands=2)
        seen: list[str] = []
        rank = BatchRanker.rank
        monkeypatch.setattr(BatchRanker, "rank", lambda self, brands: seen.extend(brands) or rank(self, brands))
        jobs = ExportJobs(root, lambda: engine)  # a new server: requeues the job, which resumes
        try:
            deadline = time.monotonic() + 120
            while (state := jobs.get(job.id)).status in ("queued", "running"):
                assert time.monotonic() < deadline, state
                time.sleep(0.05)
        finally:
            jobs.close()
        brand_order = engine.brand_ids()
    assert state.status == "done" and (state.done_brands, state.total_brands, state.rows) == (6, 6, 30)
    assert seen == brand_order[2:]  # the first chunk's two brands were not ranked again
    assert jobs.result_path(state).read_bytes() == (tmp_path / "whole.csv").read_bytes()
