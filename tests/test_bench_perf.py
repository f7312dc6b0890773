"""The performance sections of the benchmark (issue 8), run at tiny sizes: they run, and say what they measured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import __main__ as bench_main
from bench.common import Row
from bench.explain_latency import ExplainConfig
from bench.explain_latency import run as explain_run
from bench.index_scale import ScaleConfig
from bench.index_scale import run as scale_run
from bench.match_e2e import E2eConfig, Served, _no_encoders, rows_of, stage_rows
from bench.match_e2e import run as e2e_run
from bench.pgvector_cmp import growth_note, target_met
from congruence.encoders import torch_models


def test_new_sections_are_default_and_selectable() -> None:
    for name in ("index-scale", "match-e2e", "explain"):
        assert bench_main.SECTIONS[name].default and name in bench_main.DEFAULT_SECTIONS
        assert bench_main.parse_args(["--quick", "--only", name]).only == [name]


def test_sections_are_registered_in_one_table() -> None:
    sections = bench_main.SECTIONS
    assert list(sections) == [
        "ingest",
        "match",
        "index-scale",
        "pgvector",
        "match-e2e",
        "explain",
        "export",
        "ranking-photos",
        "ranking-photos-fine",
        "ranking-instagram",
        "warm-start",
        "feedback",
        "feedback-seeds",
        "caption-safety",
        "encoder-rates",
        "index-build",
        "load",
        "scale",
        "serve-calls",
        "head-memory",
        "gpu",
    ]
    assert all(name == spec.name for name, spec in sections.items())
    assert {name for name, spec in sections.items() if spec.needs_pg} == {"ingest", "pgvector"}
    assert tuple(sections)[:7] == bench_main.DEFAULT_SECTIONS  # the ranking sections and the rest run only when named


def test_head_memory_times_the_rerank_with_and_without_a_partner_memory() -> None:
    from bench.head_memory import MemoryBenchConfig
    from bench.head_memory import run as memory_run

    section = memory_run(MemoryBenchConfig(candidates=20, sizes=(3, 30), calls=5))
    rows = section.tables[0].rows
    assert [r["memory brands"] for r in rows] == [3, 30] and [r["partners"] for r in rows] == [45, 450]
    assert all(float(r["with memory p50 ms"]) > 0 and float(r["ratio (paired medians)"]) > 0 for r in rows)  # type: ignore[arg-type]


def test_index_scale_compares_product_index_and_sq8_against_brute_force() -> None:
    section = scale_run(ScaleConfig((3000,), {3000: ("flat", "sq8")}, n_queries=20))
    flat, sq8 = section.tables[0].rows
    assert flat["storage"] == "float32 (product VectorIndex)" and sq8["storage"] == "sq8 (product VectorIndex)"
    assert float(flat["recall@10"]) >= 0.95 and float(sq8["recall@10"]) >= 0.9  # type: ignore[arg-type]
    assert float(sq8["index MB"]) < float(flat["index MB"]) / 2.5  # type: ignore[arg-type]


def test_match_e2e_times_rerank_paths_in_a_serving_process(tmp_path: Path) -> None:
    section = e2e_run(E2eConfig((2000,), brands=8), tmp_path)
    latency, breakdown, setup = section.tables
    assert [r["path"] for r in breakdown.rows] == [r["path"] for r in latency.rows]
    assert float(breakdown.rows[1]["candidates' posts (memory)"]) > 0  # type: ignore[arg-type]  # stored projections read
    assert [r["path"] for r in latency.rows] == [
        "faiss top-k only (baseline)",
        "match_brand, no filter",
        "match_brand, fitness+micro (~10%)",
        "no rerank (as similar)",
    ]
    assert all(float(r["p50 ms"]) > 0 for r in latency.rows)  # type: ignore[arg-type]
    row = setup.rows[0]
    assert row["n"] == 2000 and row["dim"] == 256 and float(row["index recall@10"]) >= 0.95  # type: ignore[arg-type]
    assert float(row["served recall@10 (refined)"]) >= 0.95  # type: ignore[arg-type]
    assert float(row["top-20 agreement vs exact"]) >= 0.9  # type: ignore[arg-type]  # reranked answer = exact pipeline's
    assert section.details["targets_met"] is None  # checked at 1M only


def test_rows_of_gives_paired_ratio_to_the_baseline() -> None:
    times = {"faiss top-k only (baseline)": [0.001, 0.001], "match_brand, no filter": [0.004, 0.004]}
    stages = {"faiss top-k only (baseline)": {"faiss search": 0.5}, "match_brand, no filter": {"faiss search": 1.0}}
    served = Served(5, "flat", "float32", 256, 0.1, 1.0, 0.5, 100.0, 90.0, 120.0, 1.0, 1.0, 1000.0, 1.0, times, stages)
    rows = rows_of(served)
    assert rows[1]["vs faiss-only (paired p50)"] == pytest.approx(4.0)
    assert rows[1]["p50 ms"] == pytest.approx(4.0)
    split = stage_rows(served)
    assert split[1]["faiss search"] == 1.0 and split[1]["other"] == pytest.approx(3.0)


def test_serving_process_cannot_load_an_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_models, "image_encoder", torch_models.image_encoder)  # restored after the test
    monkeypatch.setattr(torch_models, "text_encoder", torch_models.text_encoder)
    _no_encoders()
    with pytest.raises(RuntimeError, match="re-encoding"):
        torch_models.image_encoder("efficientnet-lite0")


def test_explain_latency_times_default_method_and_forward() -> None:
    section = explain_run(ExplainConfig(2))
    explain, forward = section.tables[0].rows
    assert explain["path"] == "explain (gradcam)" and forward["path"] == "forward only (baseline)"
    assert float(explain["p50 ms"]) > 0 and forward["vs forward (paired p50)"] == 1.0  # type: ignore[arg-type]


def test_pgvector_target_and_growth_note() -> None:
    engine = "VectorIndex.search (product path)"
    h2h: list[Row] = [
        {"n": 50_000, "faiss engine": engine, "QPS faiss/pg": 6.2, "pg recall": 0.96, "faiss recall": 0.97},
        {"n": 10_000, "faiss engine": engine, "QPS faiss/pg": 3.8, "pg recall": 0.99, "faiss recall": 0.99},
    ]
    assert target_met(h2h, 0.95) is True
    assert target_met([{**h2h[0], "QPS faiss/pg": 4.9}], 0.95) is False
    assert target_met([{**h2h[0], "faiss recall": 0.94}], 0.95) is False  # equal recall, or no claim
    assert target_met([{**h2h[0], "faiss engine": "faiss m=32 efc=80"}], 0.95) is None  # only the product's call counts
    assert target_met(h2h[1:], 0.95) is None  # 10k only (--quick): not checked
    assert target_met([], 0.95) is None
    builds: list[Row] = [
        {"n": 10_000, "engine": "pgvector m=16", "build s": 10.0},
        {"n": 100_000, "engine": "pgvector m=16", "build s": 100.0},
    ]
    assert growth_note(builds) == (
        "1M not run: pgvector's build time grew as n^1.00 from 10,000 to 100,000 "
        "(10 s -> 100 s), about 17 min at 1M on this machine"
    )


def test_gpu_check_runs_every_part_and_records_a_failing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from bench import gpu_check

    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--tiny", "--out", str(out)]) == 0  # the same parts, tiny, on a CPU or a GPU host
    doc = json.loads(out.read_text())
    parts = doc["parts"]
    cuda = torch.cuda.is_available()
    assert list(parts) == ["faiss", "encode", "rerank", "export"] and doc["cuda"] is cuda
    assert (doc["gpu"] is None) is not cuda and parts["encode"]["device"].startswith("cuda" if cuda else "cpu")
    assert parts["faiss"]["flat_fp32"]["recall_at_10"] == 1.0 and parts["faiss"]["flat_fp16"]["qps"] > 0
    assert parts["encode"]["pipeline_images_s"] > 0 and parts["encode"]["images"] == 12
    assert parts["rerank"]["brands"] == 6 and parts["export"]["rows"] == 6 * 10

    def no_kit(cfg: gpu_check.GpuConfig) -> dict[str, object]:
        raise ModuleNotFoundError("No module named 'faiss'")  # what a GPU host without the kit says

    monkeypatch.setattr(gpu_check, "part_rerank", no_kit)
    doc = gpu_check.run(gpu_check.GpuConfig.tiny(), tmp_path, ("rerank", "export"))
    assert doc["parts"]["rerank"]["error"].startswith("ModuleNotFoundError") and "brands_s" in doc["parts"]["export"]
    assert bench_main.parse_args(["--gpu"]).gpu and bench_main.SECTIONS["gpu"].default is False
