"""Match latency of the product's VectorIndex at 10k/100k influencers, with and without filters."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

import faiss
import numpy as np

from bench.common import Row, Section, Stats, Table, sample_ab, stats, stopwatch
from congruence.core.settings import Settings
from congruence.datasets.synthetic import D_PRODUCTION, Influencers, ground_truth, influencers, recall_at_k
from congruence.indexer.index import VectorIndex
from congruence.search.filters import Filters

logger = logging.getLogger(__name__)
FILTERS: dict[str, Filters | None] = {
    "none": None,
    "fitness+micro (~10%)": Filters.make(category="fitness", micro=True),
    "food+micro (~1%)": Filters.make(category="food", micro=True),
}


@dataclass(frozen=True)
class RetrievalConfig:
    sizes: tuple[int, ...]
    n_queries: int  # timed single queries per (size, filter)
    n_baseline_queries: int  # for the exact baseline, which is slow at 100k
    k: int = 10
    d: int = D_PRODUCTION
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> RetrievalConfig:
        return cls((10_000,), 200, 200) if quick else cls((10_000, 100_000), 500, 100)


@dataclass(frozen=True)
class Built:
    index: VectorIndex
    seconds: float
    megabytes: float


def build(xb: np.ndarray, kind: str, codec: str = "float32") -> Built:
    """A product VectorIndex over ``xb`` (labels = row numbers), its build time and size; added
    in 50k-vector batches, as a rebuild from PostgreSQL does (sq8 learns its ranges from the first)."""
    index = VectorIndex(xb.shape[1], kind, codec)
    n = len(xb)
    with stopwatch() as sw:
        for i in range(0, n, 50_000):
            part = xb[i : i + 50_000]
            index.add(np.arange(i, i + len(part), dtype=np.int64), np.zeros(len(part), np.int64), part)
    size = faiss.serialize_index(index.index).nbytes + index.labels.nbytes + index.versions.nbytes + index.alive.nbytes
    return Built(index, sw[0], size / 1e6)


def product_kind(n: int) -> str:
    return "flat" if n <= Settings().exact_threshold else "hnsw"


@dataclass(frozen=True)
class Timed:
    """Latency of the index over all queries, the labels it found, and the paired ratio
    exact / index over the queries where the exact baseline ran right after it."""

    lat: Stats
    found: np.ndarray  # (nq, k) labels
    exact: Stats
    speedup: float


def time_search(
    index: VectorIndex, baseline: VectorIndex, xq: np.ndarray, k: int, allowed: np.ndarray | None, n_baseline: int
) -> Timed:
    found = np.empty((len(xq), k), np.int64)

    def call(i: int) -> None:
        found[i] = index.search(xq[i : i + 1], k, allowed)[1][0]

    def base(i: int) -> None:
        baseline.search(xq[i : i + 1], k, allowed)

    if baseline is index:
        ta = sample_ab(call, None, len(xq))[0]
        return Timed(stats(ta), found, stats(ta), 1.0)
    ta, tb = sample_ab(call, base, len(xq), n_baseline)
    paired = float(np.median(tb) / np.median(ta[: len(tb)]))
    return Timed(stats(ta), found, stats(tb), paired)


def size_rows(cfg: RetrievalConfig, data: Influencers, built: Built, baseline: VectorIndex) -> list[Row]:
    index = built.index
    rows: list[Row] = []
    for name, flt in FILTERS.items():
        mask = flt.mask(data.table, index) if flt else None
        truth = ground_truth(data.xq, data.xb, cfg.k, mask)
        t = time_search(index, baseline, data.xq, cfg.k, mask, cfg.n_baseline_queries)
        rows.append(
            {
                "n": len(data.xb),
                "index": index.kind,
                "filter": name,
                "pass %": 100.0 if mask is None else 100 * float(mask.mean()),
                "p50 ms": t.lat.median_ms,
                "p99 ms": t.lat.p99_ms,
                "QPS": t.lat.per_s,
                "recall@10": recall_at_k(t.found, truth),
                "exact p50 ms": t.exact.median_ms,
                "speedup vs exact": t.speedup,
            }
        )
    return rows


def run(cfg: RetrievalConfig) -> Section:
    section = Section("match latency")
    latency: list[Row] = []
    builds: list[Row] = []
    for n in cfg.sizes:
        with stopwatch() as sw:
            data = influencers(n, cfg.n_queries, cfg.d, cfg.seed)
        built = build(data.xb, product_kind(n))
        base = built.index if built.index.kind == "flat" else build(data.xb, "flat").index
        latency += size_rows(cfg, data, built, base)
        builds.append(
            {
                "n": n,
                "index": built.index.kind,
                "build s": built.seconds,
                "index MB": built.megabytes,
                "raw vectors MB": data.xb.nbytes / 1e6,
                "data gen s": sw[0],
            }
        )
        del data, built, base
    section.tables += [
        Table("single-query latency, k=10 (exact = flat VectorIndex with the same filter)", latency),
        Table("index build and size", builds),
    ]
    section.notes += [
        f"d={cfg.d}; {cfg.n_queries} timed queries per row after 5 warm-ups; the exact baseline runs right "
        f"after the index on the first {cfg.n_baseline_queries}, and the speedup is the ratio of medians over those "
        "pairs (the baseline is the same index up to "
        f"{Settings().exact_threshold:,}, where the product is exact already); QPS = 1000 / p50",
        "filters via congruence Filters.make(category, micro=True).mask(); recall against brute force "
        "over the rows that pass the filter",
        f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
    ]
    section.details = {
        "config": cfg.__dict__,
        "exact_threshold": Settings().exact_threshold,
        "filters": {k: (v.__dict__ if v else None) for k, v in FILTERS.items()},
    }
    return section
