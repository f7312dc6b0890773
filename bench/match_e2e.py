"""Match end to end with a head in service: retrieve + filter + rerank of 200 candidates.

Builds a real store in an embedded PostgreSQL (accounts, a seeded head in service, its
256-d space with per-post projections written at "index time", as ``bench.export_speed``
does, generated in chunks so 1M influencers fit in memory), then times
``Engine.match_brand`` in a fresh serving process (``python -m bench.match_e2e --serve``),
so its memory is the engine's alone: FAISS index, account table, head. In that process the
encoders are made unloadable: the rerank reads the stored per-post projections and must
not re-encode anything (a load would fail the run).

Each brand runs three paths back to back (paired, so the ratios hold on a shared machine):
FAISS top-k alone (the baseline), ``match_brand`` with no filter, and with a category +
micro filter (~10% of influencers pass).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from bench.common import Row, Section, Table, stats, timed_calls
from bench.export_speed import D_HEAD
from bench.match_e2e_store import E2eConfig, build_store
from congruence.core.settings import Settings
from congruence.search.engine import Engine
from congruence.store.embedded_pg import embedded_pg
from congruence.store.vectors import VectorStore
from congruence.training.deploy import publish_current

logger = logging.getLogger(__name__)
TARGET_P50_MS, TARGET_P99_MS, TARGET_MEMORY_GB = 20.0, 50.0, 3.0


@dataclass(frozen=True)
class Served:
    """What the serving process measured; memory in MB (VmRSS, VmHWM of /proc/self/status)."""

    n: int
    index_kind: str
    codec: str
    dim: int
    engine_start_s: float
    index_mb: float
    posts_mb: float  # the per-post vectors held beside the index (int8 + scales)
    rss_ready_mb: float  # after the engine opened (index built or loaded) and a gc
    rss_anon_mb: float  # of which anonymous (heap): the rest is mapped files, shared libraries mostly
    peak_rss_mb: float  # high-water mark over the whole process, index build included
    recall_at_10: float
    served_recall_at_10: float  # the engine's answer without a rerank: compressed candidates re-scored exactly
    batched_qps: float
    agreement_at_k: float  # top-k overlap of match_brand with an exact float pipeline
    times_s: dict[str, list[float]]  # path -> per-brand wall seconds, brands in the same order
    stages_ms: dict[str, dict[str, float]]  # path -> stage -> mean ms per query


STAGES = (
    ("congruence.store.records", "Store", "generation", "generation check (PG)"),
    ("congruence.store.vectors", "VectorStore", "account_entry", "brand kind + vectors (PG)"),
    ("congruence.search.filters", "Filters", "mask", "filter mask"),
    ("congruence.indexer.index", "VectorIndex", "search", "faiss search"),
    ("congruence.indexer.post_matrix", "PostMatrix", "padded", "candidates' posts (memory)"),
    ("congruence.training.model", "CongruenceHead", "score", "head forward"),
)


def stage_clock() -> AbstractContextManager[dict[str, float]]:
    """Seconds spent in each of ``STAGES`` while inside (methods wrapped, restored after)."""
    import importlib

    return timed_calls(
        [(getattr(importlib.import_module(module), cls), name, label) for module, cls, name, label in STAGES]
    )


def _rss_mb() -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _no_encoders() -> None:
    """Make loading an encoder fail: the rerank must read stored projections only."""
    from congruence.encoders import torch_models

    def refuse(*_: object, **__: object) -> None:
        raise RuntimeError("the match path tried to load an encoder (re-encoding)")

    torch_models.image_encoder = refuse  # type: ignore[assignment]
    torch_models.text_encoder = refuse  # type: ignore[assignment]


def serve(settings: Settings, brands: int, k: int) -> Served:
    """Open an Engine and time the three paths per brand."""
    from congruence.search.filters import Filters

    _no_encoders()
    t = time.perf_counter()
    publish_current(settings)  # the writer's step: the index built from PostgreSQL and published
    engine = Engine(settings)
    start_s = time.perf_counter() - t
    snap = engine.snapshot
    assert snap.head is not None, "no head in service"
    gc.collect()
    rss_ready = _rss_mb()
    ids = [f"brand_{i:06d}" for i in range(brands)]
    flt = Filters.make(category="fitness", micro=True)
    qs = {b: engine.entry(snap, b, "brand").vector for b in ids}

    def faiss_only(b: str) -> None:
        snap.index.search(qs[b][None, :], k)

    paths = {
        "faiss top-k only (baseline)": faiss_only,
        "match_brand, no filter": lambda b: engine.match_brand(b, k),
        "match_brand, fitness+micro (~10%)": lambda b: engine.match_brand(b, k, flt),
        # what similar() does: no rerank; from compressed codes, candidates re-scored exactly
        "no rerank (as similar)": lambda b: engine.retrieve(snap, qs[b][None, :], k),
    }
    for b in ids[:10]:  # warm-up
        for f in paths.values():
            f(b)
    times = {name: np.empty(len(ids)) for name in paths}
    stages = {name: dict.fromkeys((label for *_, label in STAGES), 0.0) for name in paths}
    with stage_clock() as spent:
        for i, b in enumerate(ids):
            for name, f in paths.items():
                before = dict(spent)
                t = time.perf_counter()
                f(b)
                times[name][i] = time.perf_counter() - t
                for label, v in spent.items():
                    stages[name][label] += v - before[label]
    stages_ms = {name: {label: 1000 * v / len(ids) for label, v in st.items()} for name, st in stages.items()}
    peak = _rss_mb()["VmHWM"]  # before the exact reference below, which holds float copies
    xq = np.stack(list(qs.values()))
    recall, served_recall, batched_qps = _index_quality(engine, xq)
    agreement = _agreement(engine, ids[:50], k)
    index_mb = (
        faiss.serialize_index(snap.index.index).nbytes
        + snap.index.labels.nbytes
        + snap.index.alive.nbytes
        + snap.index.versions.nbytes
    ) / 1e6
    posts_mb = snap.index.posts.nbytes / 1e6 if snap.index.posts is not None else 0.0
    engine.close()
    return Served(
        snap.index.n_alive,
        snap.index.kind,
        snap.index.codec,
        snap.index.dim,
        start_s,
        index_mb,
        posts_mb,
        rss_ready["VmRSS"],
        rss_ready["RssAnon"],
        peak,
        recall,
        served_recall,
        batched_qps,
        agreement,
        {name: v.tolist() for name, v in times.items()},
        stages_ms,
    )


def _exact_top(engine: Engine, xq: np.ndarray, n: int) -> np.ndarray:
    """(nq, n) seqs of the exact top-n by the float32 head vectors in PostgreSQL (streamed)."""
    snap = engine.snapshot
    best_d = np.full((len(xq), n), -np.inf, np.float32)
    best_l = np.full((len(xq), n), -1, np.int64)
    with engine.reading() as store:
        parts = list(VectorStore(store).account_vector_chunks(snap.space, "influencer"))
    for part in parts:
        d = np.concatenate([best_d, xq @ part.vectors.T], axis=1)
        lab = np.concatenate([best_l, np.broadcast_to(part.seq, (len(xq), len(part.seq)))], axis=1)
        top = np.argsort(-d, axis=1, kind="stable")[:, :n]
        best_d, best_l = np.take_along_axis(d, top, axis=1), np.take_along_axis(lab, top, axis=1)
    return best_l


def _index_quality(engine: Engine, xq: np.ndarray) -> tuple[float, float, float]:
    """recall@10 against exact search on the float32 vectors in PostgreSQL: of the index
    alone (sq8 codes pay for their rounding) and of the engine's answer without a rerank
    (compressed candidates re-scored exactly); and the index's batched QPS."""
    from congruence.datasets.synthetic import recall_at_k

    truth = _exact_top(engine, xq, 10)
    t = time.perf_counter()
    _, found = engine.snapshot.index.search(xq, 10)
    qps = len(xq) / (time.perf_counter() - t)
    served = engine.retrieve(engine.snapshot, xq, 10)[1]  # no brand posts: no rerank, as similar()
    return recall_at_k(found, truth), recall_at_k(served, truth), qps


def _agreement(engine: Engine, brands: list[str], k: int) -> float:
    """Mean top-k overlap of ``match_brand`` with the same pipeline done exactly: exact
    top-N over float32 head vectors, reranked from the float16 per-post vectors in
    PostgreSQL (the system of record) instead of HNSW codes and the int8 copy in memory."""
    snap = engine.snapshot
    assert snap.head is not None
    with engine.reading() as store:
        entries = [VectorStore(store).account_entry(snap.space, b) for b in brands]
    xq = np.stack([e.vector for e in entries if e is not None and e.vector is not None])
    cands = _exact_top(engine, xq, max(k, engine.settings.candidates))
    ids = np.asarray(snap.table.ids, dtype=object)
    overlap = []
    for b, e, seqs in zip(brands, entries, cands, strict=True):
        assert e is not None and e.posts is not None
        with engine.reading() as store:
            got = VectorStore(store).post_vectors(snap.space, seqs=seqs.tolist())
        names = ids[snap.row_of_seq[seqs]]
        scores = snap.head.score_candidates(e.posts, [got[a] for a in names])
        exact = set(names[np.argsort(-scores, kind="stable")[:k]].tolist())
        served = {h.influencer_id for h in engine.match_brand(b, k)}
        overlap.append(len(exact & served) / k)
    return float(np.mean(overlap))


# -- the section ----------------------------------------------------------------------
def _spawn_serve(settings: Settings, cfg: E2eConfig) -> Served:
    assert settings.database_url is not None
    cmd = [
        sys.executable,
        "-m",
        "bench.match_e2e",
        "--serve",
        "--home",
        str(settings.home),
        "--database-url",
        settings.database_url,
        "--brands",
        str(cfg.brands),
        "--k",
        str(cfg.k),
        "--candidates",
        str(cfg.candidates),
    ]
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"serving process failed: {out.stderr[-2000:]}")
    return Served(**json.loads(out.stdout.strip().splitlines()[-1]))


def rows_of(res: Served) -> list[Row]:
    base = np.asarray(res.times_s["faiss top-k only (baseline)"])
    rows: list[Row] = []
    for name, v in res.times_s.items():
        s = stats(np.asarray(v))
        rows.append(
            {
                "n": res.n,
                "path": name,
                "p50 ms": s.median_ms,
                "p99 ms": s.p99_ms,
                "mean ms": s.mean_ms,
                "vs faiss-only (paired p50)": float(np.median(np.asarray(v)) / np.median(base)),
            }
        )
    return rows


def stage_rows(res: Served) -> list[Row]:
    """Mean ms per query in each stage, per path; "other" is the rest of the path's mean."""
    rows: list[Row] = []
    for name, st in res.stages_ms.items():
        mean = 1000 * float(np.mean(res.times_s[name]))
        rows.append({"n": res.n, "path": name, **st, "other": mean - sum(st.values()), "total": mean})
    return rows


def run(cfg: E2eConfig, tmp: Path) -> Section:
    section = Section(f"match end to end: retrieve + filter + rerank {cfg.candidates} with the head")
    latency: list[Row] = []
    breakdown: list[Row] = []
    setup: list[Row] = []
    targets: dict[int, bool] = {}
    for n in cfg.sizes:
        with embedded_pg(tmp / f"e2e-pg-{n}" / "pg") as pg:
            settings = Settings(
                home=tmp / f"e2e-home-{n}",
                database_url=pg.fresh_database(f"e2e{n}"),
                device="cpu",
                candidates=cfg.candidates,
            )
            built = build_store(settings, cfg, n)
            gc.collect()
            res = _spawn_serve(settings, cfg)
        rows = rows_of(res)
        latency += rows
        breakdown += stage_rows(res)
        setup.append(
            {
                "n": n,
                "posts": int(built["posts"]),
                "generate s": built["generate"],
                "write PostgreSQL s": built["write_postgres"],
                "engine start + index build s": res.engine_start_s,
                "index": f"{res.index_kind} {res.codec}",
                "dim": res.dim,
                "index MB": res.index_mb,
                "per-post MB": res.posts_mb,
                "serving RSS MB": res.rss_ready_mb,
                "of which anonymous MB": res.rss_anon_mb,
                "serving peak RSS MB": res.peak_rss_mb,
                "index recall@10": res.recall_at_10,
                "served recall@10 (refined)": res.served_recall_at_10,
                f"top-{cfg.k} agreement vs exact": res.agreement_at_k,
                "batched QPS (k=10)": res.batched_qps,
            }
        )
        if n == 1_000_000:
            e2e = next(r for r in rows if r["path"] == "match_brand, no filter")
            targets[n] = (
                float(e2e["p50 ms"]) <= TARGET_P50_MS  # type: ignore[arg-type]
                and float(e2e["p99 ms"]) <= TARGET_P99_MS  # type: ignore[arg-type]
                and res.rss_ready_mb / 1024 <= TARGET_MEMORY_GB
            )
    section.tables += [
        Table(f"latency per brand, k={cfg.k}, {cfg.brands} brands, paths interleaved", latency),
        Table("where the time goes: mean ms per query in each stage (PG = PostgreSQL round trip)", breakdown),
        Table("set-up and serving process (memory: the serving process alone; PostgreSQL apart)", setup),
    ]
    section.notes += [
        (
            f"{cfg.brands} brands x {cfg.posts[0]}-{cfg.posts[1]} posts; influencers {cfg.posts[0]}-{cfg.posts[1]} "
            f"posts each; head d={D_HEAD} (seeded, untrained: weights do not change the cost); "
            "the serving process cannot load an encoder, so nothing is re-encoded"
        ),
        (
            f"targets at 1M (2 cores): p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms, "
            f"serving memory (RSS once ready) <= {TARGET_MEMORY_GB:.0f} GB: "
            + (
                {True: "met", False: "MISSED"}[all(targets.values())]
                if targets
                else "not checked (1M runs in full mode only)"
            )
        ),
    ]
    section.details = {"config": asdict(cfg), "targets_met": all(targets.values()) if targets else None}
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.match_e2e", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--serve", action="store_true", help="internal: time an Engine over an existing store")
    p.add_argument("--home", type=Path)
    p.add_argument("--database-url")
    p.add_argument("--brands", type=int, default=200)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--sizes", default="100000", help="comma-separated influencer counts (without --serve)")
    args = p.parse_args(argv)
    if args.serve:
        settings = Settings(home=args.home, database_url=args.database_url, device="cpu", candidates=args.candidates)
        print(json.dumps(asdict(serve(settings, args.brands, args.k))))
        return 0
    import tempfile

    from bench.common import machine_info, report_section

    cfg = E2eConfig(tuple(int(s) for s in args.sizes.split(",")), args.brands, args.k, args.candidates)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="congruence-e2e-") as tmp:
        t = time.perf_counter()
        section = run(cfg, Path(tmp))
        section.seconds = time.perf_counter() - t
    return report_section(section, "match-e2e", machine)


if __name__ == "__main__":
    raise SystemExit(main())
