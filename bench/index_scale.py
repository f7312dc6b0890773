"""The product's HNSW index at 10k..1M influencers (d=1664), and compressed storage on the same graph.

For each size: build time, memory (resident growth of this process over the build, and the
index's own bytes), recall@10 against exact search, batched QPS and single-query p50/p99,
for the product's ``VectorIndex`` (HNSW, M=32, efConstruction=80, efSearch=96) storing
float32 vectors or 8-bit codes (``sq8``, what it serves above 200k accounts: the 3 GB
serving-memory target at 1M), and FAISS ``IndexHNSWSQ`` storing float16 on the same graph. One
index lives at a time, so 1M fits in 24 GB beside its vectors.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from bench.common import Row, Section, Table, sample_latency, stats
from congruence.datasets.synthetic import D_PRODUCTION, SyntheticDataset, recall_at_k
from congruence.indexer.index import EF_CONSTRUCTION, EF_SEARCH, HNSW_M, VectorIndex

logger = logging.getLogger(__name__)
SQ = {"fp16": faiss.ScalarQuantizer.QT_fp16, "sq8": faiss.ScalarQuantizer.QT_8bit}


@dataclass(frozen=True)
class ScaleConfig:
    sizes: tuple[int, ...]
    storages: dict[int, tuple[str, ...]]  # size -> storages measured ("flat" is the product index)
    n_queries: int = 200
    k: int = 10
    d: int = D_PRODUCTION
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> ScaleConfig:
        if quick:
            return cls((10_000,), {10_000: ("flat", "sq8")}, n_queries=100)
        both = ("flat", "fp16", "sq8")
        # fp16 at 1M would need 3.3 GB for the codes alone: over the target, so not built there
        return cls((10_000, 100_000, 1_000_000), {10_000: both, 100_000: both, 1_000_000: ("flat", "sq8")})


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def hnsw_bytes(index: faiss.Index) -> int:
    """Codes + graph links + per-vector level bookkeeping of a faiss IndexHNSW*."""
    storage = faiss.downcast_index(index.storage)  # type: ignore[attr-defined]
    graph = index.hnsw  # type: ignore[attr-defined]
    return int(
        index.ntotal * storage.sa_code_size()
        + graph.neighbors.size() * 4
        + graph.offsets.size() * 8
        + graph.levels.size() * 4
    )


def build(xb: np.ndarray, storage: str) -> tuple[object, faiss.Index, float]:
    """(what to search, its faiss HNSW, build seconds); "flat" and "sq8" are the product's
    ``VectorIndex`` (float32, and the 8-bit codes it stores above CONGRUENCE_COMPRESS_THRESHOLD,
    trained on its first batch as a rebuild from PostgreSQL does: 50k vectors)."""
    t = time.perf_counter()
    if storage in ("flat", "sq8"):
        vi = VectorIndex(xb.shape[1], "hnsw", "float32" if storage == "flat" else "sq8")
        for i in range(0, len(xb), 50_000):
            part = xb[i : i + 50_000]
            vi.add(np.arange(i, i + len(part), dtype=np.int64), np.zeros(len(part), np.int64), part)
        return vi, vi.index, time.perf_counter() - t
    index = faiss.IndexHNSWSQ(xb.shape[1], SQ[storage], HNSW_M, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.train(xb[:: max(1, len(xb) // 100_000)])
    index.add(xb)
    return index, index, time.perf_counter() - t


def searcher(obj: object, k: int):  # type: ignore[no-untyped-def]
    if isinstance(obj, VectorIndex):
        return lambda q: obj.search(q, k)[1]
    params = faiss.SearchParametersHNSW(efSearch=EF_SEARCH)  # type: ignore[attr-defined]
    return lambda q: obj.search(q, k, params=params)[1]  # type: ignore[attr-defined]


def measure(cfg: ScaleConfig, n: int, xb: np.ndarray, xq: np.ndarray, truth: np.ndarray, storage: str) -> Row:
    gc.collect()
    before = rss_mb()
    obj, hnsw, build_s = build(xb, storage)
    grown = rss_mb() - before
    search = searcher(obj, cfg.k)
    found = np.vstack([search(xq[i : i + 1]) for i in range(len(xq))])
    lat = stats(sample_latency(lambda i: search(xq[i : i + 1]), len(xq)))
    t = time.perf_counter()
    search(xq)
    qps = len(xq) / (time.perf_counter() - t)
    own = hnsw_bytes(hnsw)
    if isinstance(obj, VectorIndex):
        own += obj.labels.nbytes + obj.versions.nbytes + obj.alive.nbytes + obj._pos_by_seq.nbytes
    names = {"flat": "float32 (product VectorIndex)", "sq8": "sq8 (product VectorIndex)"}
    row: Row = {
        "n": n,
        "storage": names.get(storage, storage),
        "build s": build_s,
        "index MB": own / 1e6,
        "RSS growth MB": grown,
        "recall@10": recall_at_k(found, truth),
        "p50 ms": lat.median_ms,
        "p99 ms": lat.p99_ms,
        "QPS single": lat.per_s,
        f"QPS batched ({len(xq)})": qps,
    }
    return row  # the index is freed here, before the next one is built


def run(cfg: ScaleConfig) -> Section:
    section = Section("index at scale (d=1664): product HNSW and compressed storage")
    rows: list[Row] = []
    for n in cfg.sizes:
        t = time.perf_counter()
        data = SyntheticDataset(cfg.d, n, cfg.n_queries, cfg.seed)
        xb, xq, truth = data.xb, data.xq, data.get_groundtruth(cfg.k)
        del data
        logger.info("%d: data + ground truth in %.1f s", n, time.perf_counter() - t)
        for storage in cfg.storages[n]:
            rows.append(measure(cfg, n, xb, xq, truth, storage))
            logger.info("%s", rows[-1])
        del xb, xq, truth
        gc.collect()
    section.tables.append(
        Table(
            f"HNSW M={HNSW_M} efConstruction={EF_CONSTRUCTION} efSearch={EF_SEARCH}, k={cfg.k}, "
            f"{cfg.n_queries} queries",
            rows,
        )
    )
    section.notes += [
        (
            "recall against brute force over the float32 vectors; single-query latency is one Python call per query "
            f"(5 warm-ups); batched = all queries in one search call, {faiss.omp_get_max_threads()} OpenMP threads"
        ),
        (
            "index MB = codes + graph (+ the product's label arrays); RSS growth = this process's resident growth "
            "over the build (includes allocator slack)"
        ),
        (
            "sq8: the product's VectorIndex with 8-bit codes (what it serves above CONGRUENCE_COMPRESS_THRESHOLD, "
            "200k by default); fp16: faiss IndexHNSWSQ on the same graph, not in the product"
        ),
    ]
    section.details = {"config": asdict(cfg)}
    return section
