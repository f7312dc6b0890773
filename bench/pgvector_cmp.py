"""FAISS HNSW against pgvector HNSW on the same vectors: build time, QPS and recall@10."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.common import Row, Section, Stats, Table, sample_ab, sample_latency, stats, stopwatch
from bench.retrieval import build
from congruence.core.settings import Settings
from congruence.datasets.synthetic import D_PRODUCTION, SyntheticDataset, recall_at_k
from congruence.indexer.index import EF_CONSTRUCTION, EF_SEARCH, HNSW_M, VectorIndex
from congruence.indexer.index_sync import IndexLayout
from congruence.store.embedded_pg import EmbeddedPg

logger = logging.getLogger(__name__)
QUERY = "SELECT id FROM t ORDER BY embedding <#> %s LIMIT {k}"


@dataclass(frozen=True)
class PgConfig:
    sizes: tuple[int, ...]
    n_queries: int
    # fine steps where recall crosses 0.95, so that each engine's cheapest setting reaching
    # it is found (at 1M, d=256, pgvector went 0.924 -> 0.973 from 40 to 80)
    pg_efs: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 80, 160, 320)
    faiss_efs: tuple[int, ...] = (16, 24, 32, 40, 48, 64, 80, 128, 160, 320)
    m: int = 16
    ef_construction: int = 64
    target_recall: float = 0.95
    k: int = 10
    d: int = D_PRODUCTION
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> PgConfig:
        return cls((10_000,), 200) if quick else cls((10_000, 50_000, 100_000), 300)


@dataclass(frozen=True)
class Engine:
    """One search setting: ``prepare()`` applies it, ``search(q)`` returns up to k ids for one (d,) query."""

    name: str
    ef: int
    prepare: Callable[[], None]
    search: Callable[[np.ndarray], np.ndarray]
    batch: Callable[[np.ndarray], object] | None = None  # all queries in one call, where the engine can


@dataclass(frozen=True)
class Point:
    engine: Engine
    lat: Stats
    recall: float


def measure(engine: Engine, xq: np.ndarray, truth: np.ndarray) -> Point:
    found = np.full(truth.shape, -1, np.int64)

    def call(i: int) -> None:
        ids = engine.search(xq[i])
        found[i, : len(ids)] = ids

    engine.prepare()
    return Point(engine, stats(sample_latency(call, len(xq))), recall_at_k(found, truth))


def pick(points: list[Point], target: float) -> Point:
    """The cheapest setting reaching ``target`` recall, else the most accurate one."""
    ok = [p for p in points if p.recall >= target]
    return min(ok, key=lambda p: p.engine.ef) if ok else max(points, key=lambda p: p.recall)


# -- pgvector ----------------------------------------------------------------------
def load_table(conn: psycopg.Connection, xb: np.ndarray) -> float:
    """Create ``t(id, embedding vector(d))`` and COPY ``xb`` in binary; seconds taken."""
    conn.execute("DROP TABLE IF EXISTS t")
    conn.execute(f"CREATE TABLE t (id integer PRIMARY KEY, embedding vector({xb.shape[1]}) NOT NULL)")
    with stopwatch() as sw:
        with conn.cursor() as cur, cur.copy("COPY t (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for i, v in enumerate(xb):
                copy.write_row((i, v))
        conn.execute("ANALYZE t")
    return sw[0]


def parallel_workers() -> int:
    return max((os.cpu_count() or 1) - 1, 0)  # the leader builds too: workers + 1 = cores


def build_pg_index(conn: psycopg.Connection, cfg: PgConfig, n: int) -> tuple[float, float]:
    """Build the HNSW index; (seconds, size in MB)."""
    need_mb = max(256, int(2.5 * n * cfg.d * 4 / 1e6))  # the graph must fit, or the build crawls
    conn.execute(f"SET maintenance_work_mem = '{need_mb}MB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {parallel_workers()}")
    with stopwatch() as sw:
        conn.execute(
            f"CREATE INDEX t_hnsw ON t USING hnsw (embedding vector_ip_ops) "
            f"WITH (m = {cfg.m}, ef_construction = {cfg.ef_construction})"
        )
    row = conn.execute("SELECT pg_relation_size('t_hnsw')").fetchone()
    return sw[0], (row[0] if row else 0) / 1e6


def uses_index(conn: psycopg.Connection, q: np.ndarray, k: int) -> bool:
    plan = conn.execute("EXPLAIN " + QUERY.format(k=k), (q,)).fetchall()
    return any("t_hnsw" in r[0] for r in plan)


def pg_engine(name: str, conn: psycopg.Connection, k: int, ef: int) -> Engine:
    sql = QUERY.format(k=k)

    def search(q: np.ndarray) -> np.ndarray:
        return np.array([r[0] for r in conn.execute(sql, (q,)).fetchall()], np.int64)

    def prepare() -> None:
        conn.execute(f"SET hnsw.ef_search = {ef}")

    return Engine(name, ef, prepare, search)


# -- FAISS -------------------------------------------------------------------------
def faiss_hnsw(xb: np.ndarray, m: int, ef_construction: int) -> tuple[faiss.IndexHNSWFlat, float]:
    index = faiss.IndexHNSWFlat(xb.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    with stopwatch() as sw:
        index.add(xb)
    return index, sw[0]


def faiss_engine(name: str, index: faiss.Index, k: int, ef: int) -> Engine:
    params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]  # missing from the stubs
    return Engine(name, ef, lambda: None, lambda q: index.search(q[None], k, params=params)[1][0])


def product_engine(index: VectorIndex, k: int, ef: int) -> Engine:
    """The product's own call, ``VectorIndex.search``, at efSearch ``ef`` (CONGRUENCE_EF_SEARCH)."""

    def prepare() -> None:
        index.ef_search = ef

    return Engine(
        "VectorIndex.search (product path)",
        ef,
        prepare,
        lambda q: index.search(q[None], k)[1][0],
        lambda xq: index.search(xq, k),
    )


# -- the comparison ----------------------------------------------------------------
@dataclass(frozen=True)
class SizeResult:
    points: list[Point]
    builds: list[Row]
    head_to_head: list[Row]


def point_row(n: int, p: Point) -> Row:
    return {
        "n": n,
        "engine": p.engine.name,
        "ef_search": p.engine.ef,
        "p50 ms": p.lat.median_ms,
        "p99 ms": p.lat.p99_ms,
        "QPS": p.lat.per_s,
        "recall@10": p.recall,
    }


def head_to_head(n: int, pg: Point, fa: Point, xq: np.ndarray) -> Row:
    """Re-time the two chosen settings with their queries interleaved; the QPS ratio."""
    pg.engine.prepare()
    fa.engine.prepare()
    t_pg, t_fa = sample_ab(lambda i: pg.engine.search(xq[i]), lambda i: fa.engine.search(xq[i]), len(xq))
    # every query ran on both, so the ratio of medians is a paired comparison
    s_pg, s_fa = stats(t_pg), stats(t_fa)
    batched: float | None = None
    if fa.engine.batch is not None:  # throughput: the whole query set in one call, against pgvector's 1/latency
        runs = []
        for _ in range(3):
            with stopwatch() as sw:
                fa.engine.batch(xq)
            runs.append(len(xq) / sw[0])
        batched = float(np.median(runs)) * s_pg.median_ms / 1000
    return {
        "n": n,
        "pg ef": pg.engine.ef,
        "pg recall": pg.recall,
        "pg p50 ms": s_pg.median_ms,
        "pg p99 ms": s_pg.p99_ms,
        "faiss engine": fa.engine.name,
        "faiss ef": fa.engine.ef,
        "faiss recall": fa.recall,
        "faiss p50 ms": s_fa.median_ms,
        "faiss p99 ms": s_fa.p99_ms,
        "QPS faiss/pg": s_pg.median_ms / s_fa.median_ms,
        "batched QPS faiss/pg": batched,
    }


def pg_side(
    cfg: PgConfig, conn: psycopg.Connection, xb: np.ndarray, xq: np.ndarray, truth: np.ndarray
) -> tuple[list[Point], Row]:
    name = f"pgvector m={cfg.m} efc={cfg.ef_construction}"
    load_s = load_table(conn, xb)
    build_s, mb = build_pg_index(conn, cfg, len(xb))
    if not uses_index(conn, xq[0], cfg.k):
        raise RuntimeError("the planner does not use the HNSW index for the ORDER BY ... LIMIT query")
    points = [measure(pg_engine(name, conn, cfg.k, ef), xq, truth) for ef in cfg.pg_efs]
    return points, {"n": len(xb), "engine": name, "load s": load_s, "build s": build_s, "index MB": mb}


def faiss_side(cfg: PgConfig, xb: np.ndarray, xq: np.ndarray, truth: np.ndarray) -> tuple[list[list[Point]], list[Row]]:
    """Sweeps of a FAISS HNSW with pgvector's parameters, of the product's index, and the product path."""
    same, same_s = faiss_hnsw(xb, cfg.m, cfg.ef_construction)
    codec = IndexLayout(compress_threshold=Settings().compress_threshold).shape_for(len(xb))[1]
    prod = build(xb, "hnsw", codec)  # the product's storage at this size (sq8 past the threshold)
    names = (f"faiss m={cfg.m} efc={cfg.ef_construction}", f"faiss m={HNSW_M} efc={EF_CONSTRUCTION} {codec} (product)")
    sweeps = [
        [measure(faiss_engine(name, idx, cfg.k, ef), xq, truth) for ef in cfg.faiss_efs]
        for name, idx in zip(names, (same, prod.index.index), strict=True)
    ]
    sweeps.append(
        [measure(product_engine(prod.index, cfg.k, ef), xq, truth) for ef in sorted({*cfg.faiss_efs, EF_SEARCH})]
    )
    builds: list[Row] = [
        {
            "n": len(xb),
            "engine": names[0],
            "load s": None,
            "build s": same_s,
            "index MB": faiss.serialize_index(same).nbytes / 1e6,
        },
        {"n": len(xb), "engine": names[1], "load s": None, "build s": prod.seconds, "index MB": prod.megabytes},
    ]
    return sweeps, builds


def compare(cfg: PgConfig, conn: psycopg.Connection, n: int) -> SizeResult:
    data = SyntheticDataset(cfg.d, n, cfg.n_queries, cfg.seed)
    truth = data.get_groundtruth(cfg.k)
    pg_points, pg_build = pg_side(cfg, conn, data.xb, data.xq, truth)
    sweeps, faiss_builds = faiss_side(cfg, data.xb, data.xq, truth)
    pg = pick(pg_points, cfg.target_recall)
    # equal recall: every engine at its cheapest setting reaching the same target (0.95);
    # the recalls reached are in the table (8-bit codes top out near 0.97 at 1M, so asking
    # FAISS for pgvector's exact recall can be asking for more than the codes can give)
    rows = [head_to_head(n, pg, pick(sweep, cfg.target_recall), data.xq) for sweep in sweeps]
    conn.execute("DROP TABLE t")
    points = pg_points + [p for sweep in sweeps for p in sweep]
    return SizeResult(points, [pg_build, *faiss_builds], rows)


def run(cfg: PgConfig, pg: EmbeddedPg) -> Section:
    section = Section("faiss vs pgvector")
    points: list[Row] = []
    builds: list[Row] = []
    h2h: list[Row] = []
    with psycopg.connect(pg.fresh_database("bench_pgvector"), autocommit=True) as conn:
        register_vector(conn)
        for n in cfg.sizes:
            res = compare(cfg, conn, n)
            points += [point_row(n, p) for p in res.points]
            builds += res.builds
            h2h += res.head_to_head
    section.tables += [
        Table(f"single-query sweep, k={cfg.k}, {cfg.n_queries} queries (QPS = 1000 / p50)", points),
        Table("build (pgvector: COPY BINARY + ANALYZE, then CREATE INDEX; FAISS: add)", builds),
        Table(
            f"head to head at equal recall: each engine at its lowest ef_search with recall@10 >= "
            f"{cfg.target_recall}; re-timed with queries interleaved",
            h2h,
        ),
    ]
    versions = pg.versions()
    section.notes += [
        f"sizes {', '.join(f'{n:,}' for n in cfg.sizes)}; {growth_note(builds)}; d={cfg.d}; "
        f"PostgreSQL {versions['postgres']}, "
        f"pgvector {versions['pgvector']}; queries over a local socket, numpy parameters sent binary",
        f"pgvector builds with max_parallel_maintenance_workers={parallel_workers()} and the graph in "
        f"maintenance_work_mem; FAISS with {faiss.omp_get_max_threads()} OpenMP threads",
        "FAISS latency is a Python call per query; pgvector latency is a full SQL round trip",
    ]
    met = target_met(h2h, cfg.target_recall)
    if met is not None:
        section.notes.append(
            f"target: the product's VectorIndex.search at equal recall (each engine's cheapest setting) >= "
            f"{TARGET_RATIO:.0f}x pgvector QPS at recall@10 >= {cfg.target_recall} at the largest "
            f"size: {'met' if met else 'MISSED'}"
        )
    section.details = {"config": cfg.__dict__, "versions": versions, "targets_met": met}
    return section


TARGET_RATIO = 5.0
TARGET_MIN_N = 50_000  # below, both answer in well under a millisecond and the SQL round trip dominates


def target_met(h2h: list[Row], target_recall: float) -> bool | None:
    """The issue's target on the largest size: the product's own call (``VectorIndex.search``, its
    efSearch set for pgvector's recall) >= 5x pgvector QPS at equal recall, one query at a time
    (None when no size reaches ``TARGET_MIN_N``, as in --quick)."""
    rows = [r for r in h2h if "product path" in str(r["faiss engine"])]
    if not rows or max(int(r["n"]) for r in rows) < TARGET_MIN_N:  # type: ignore[arg-type]
        return None
    last = max(rows, key=lambda r: int(r["n"]))  # type: ignore[arg-type]
    return (
        float(last["QPS faiss/pg"]) >= TARGET_RATIO  # type: ignore[arg-type]
        and float(last["pg recall"]) >= target_recall  # type: ignore[arg-type]
        and float(last["faiss recall"]) >= target_recall  # type: ignore[arg-type]
    )


def growth_note(builds: list[Row]) -> str:
    """pgvector build-time growth between the two largest sizes, and what it implies at 1M."""
    pg = sorted(
        (int(r["n"]), float(r["build s"]))  # type: ignore[arg-type]
        for r in builds
        if str(r["engine"]).startswith("pgvector")
    )
    if len(pg) < 2:
        return "one size"
    (n0, t0), (n1, t1) = pg[-2], pg[-1]
    exp = float(np.log(t1 / t0) / np.log(n1 / n0))
    if n1 >= 1_000_000:
        return f"pgvector's build time grew as n^{exp:.2f} from {n0:,} to {n1:,} ({t0:.0f} s -> {t1:.0f} s)"
    at_1m = t1 * (1_000_000 / n1) ** exp
    return (
        f"1M not run: pgvector's build time grew as n^{exp:.2f} from {n0:,} to {n1:,} "
        f"({t0:.0f} s -> {t1:.0f} s), about {at_1m / 60:.0f} min at 1M on this machine"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.pgvector_cmp --sizes 10000,100000,1000000 --dim 256``: this section
    alone at chosen sizes and width (256: the head's space, what is served with a head)."""
    import argparse
    import time

    from bench.common import machine_info, report_section
    from congruence.store.embedded_pg import scratch_pg

    p = argparse.ArgumentParser(prog="python -m bench.pgvector_cmp", description=main.__doc__)
    p.add_argument("--sizes", default="10000,50000,100000")
    p.add_argument("--dim", type=int, default=D_PRODUCTION)
    p.add_argument("--queries", type=int, default=300)
    args = p.parse_args(argv)
    cfg = PgConfig(tuple(int(s) for s in args.sizes.split(",")), args.queries, d=args.dim)
    machine = machine_info()
    with scratch_pg("congruence-pgv-") as pg:
        t = time.perf_counter()
        section = run(cfg, pg)
        section.seconds = time.perf_counter() - t
    return report_section(section, "pgvector", machine)


if __name__ == "__main__":
    raise SystemExit(main())
