"""FAISS HNSW against pgvector HNSW on the same vectors: build time, QPS and recall@10."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import faiss
import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.common import Row, Section, Stats, Table, sample_latency, stats, stopwatch
from bench.data import D_PRODUCTION, ground_truth, influencers, recall_at_k
from bench.pg import EmbeddedPg
from bench.retrieval import build, time_search
from congruence.indexer.index import EF_CONSTRUCTION, EF_SEARCH, HNSW_M

logger = logging.getLogger(__name__)
QUERY = "SELECT id FROM t ORDER BY embedding <#> %s LIMIT {k}"


@dataclass(frozen=True)
class PgConfig:
    sizes: tuple[int, ...]
    n_queries: int
    pg_efs: tuple[int, ...] = (40, 80, 160, 320)
    faiss_efs: tuple[int, ...] = (16, 32, 64, 128, 256)
    m: int = 16
    ef_construction: int = 64
    target_recall: float = 0.95
    k: int = 10
    d: int = D_PRODUCTION
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> PgConfig:
        return cls((10_000,), 200) if quick else cls((10_000, 50_000), 300)


@dataclass(frozen=True)
class Point:
    """One search setting of one engine: latency and recall@k over the query set."""

    engine: str
    ef: int
    lat: Stats
    recall: float


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


def build_pg_index(conn: psycopg.Connection, cfg: PgConfig, n: int) -> tuple[float, float]:
    """Build the HNSW index; (seconds, size in MB)."""
    need_mb = max(256, int(2.5 * n * cfg.d * 4 / 1e6))  # the graph must fit, or the build crawls
    conn.execute(f"SET maintenance_work_mem = '{need_mb}MB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {max((os.cpu_count() or 1) - 1, 0)}")
    with stopwatch() as sw:
        conn.execute(f"CREATE INDEX t_hnsw ON t USING hnsw (embedding vector_ip_ops) "
                     f"WITH (m = {cfg.m}, ef_construction = {cfg.ef_construction})")
    row = conn.execute("SELECT pg_relation_size('t_hnsw')").fetchone()
    return sw[0], (row[0] if row else 0) / 1e6


def uses_index(conn: psycopg.Connection, q: np.ndarray, k: int) -> bool:
    plan = conn.execute("EXPLAIN " + QUERY.format(k=k), (q,)).fetchall()
    return any("t_hnsw" in r[0] for r in plan)


def pg_point(engine: str, conn: psycopg.Connection, xq: np.ndarray, truth: np.ndarray, k: int, ef: int) -> Point:
    conn.execute(f"SET hnsw.ef_search = {ef}")
    sql = QUERY.format(k=k)
    found = np.full((len(xq), k), -1, np.int64)

    def call(i: int) -> None:
        ids = [r[0] for r in conn.execute(sql, (xq[i],)).fetchall()]
        found[i, : len(ids)] = ids

    lat = stats(sample_latency(call, len(xq)))
    return Point(engine, ef, lat, recall_at_k(found, truth))


# -- FAISS -------------------------------------------------------------------------
def faiss_hnsw(xb: np.ndarray, m: int, ef_construction: int) -> tuple[faiss.IndexHNSWFlat, float]:
    index = faiss.IndexHNSWFlat(xb.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    with stopwatch() as sw:
        index.add(xb)
    return index, sw[0]


def faiss_point(engine: str, index: faiss.Index, xq: np.ndarray, truth: np.ndarray, k: int, ef: int) -> Point:
    params = faiss.SearchParametersHNSW(efSearch=ef)
    found = np.empty((len(xq), k), np.int64)

    def call(i: int) -> None:
        found[i] = index.search(xq[i : i + 1], k, params=params)[1][0]

    return Point(engine, ef, stats(sample_latency(call, len(xq))), recall_at_k(found, truth))


def pick(points: list[Point], target: float) -> Point:
    """The cheapest setting reaching ``target`` recall, else the most accurate one."""
    ok = [p for p in points if p.recall >= target]
    return min(ok, key=lambda p: p.ef) if ok else max(points, key=lambda p: p.recall)


# -- the comparison ----------------------------------------------------------------
@dataclass(frozen=True)
class SizeResult:
    points: list[Point]
    builds: list[Row]
    equal_recall: list[Row]


def point_row(n: int, p: Point) -> Row:
    return {"n": n, "engine": p.engine, "ef_search": p.ef, "p50 ms": p.lat.median_ms, "p99 ms": p.lat.p99_ms,
            "QPS": p.lat.per_s, "recall@10": p.recall}


def equal_recall_row(n: int, pg: Point, fa: Point) -> Row:
    return {"n": n, "pg ef": pg.ef, "pg recall": pg.recall, "pg QPS": pg.lat.per_s, "faiss engine": fa.engine,
            "faiss ef": fa.ef, "faiss recall": fa.recall, "faiss QPS": fa.lat.per_s,
            "QPS faiss/pg": fa.lat.per_s / pg.lat.per_s}


def pg_side(cfg: PgConfig, conn: psycopg.Connection, xb: np.ndarray, xq: np.ndarray,
            truth: np.ndarray) -> tuple[list[Point], Row]:
    name = f"pgvector m={cfg.m} efc={cfg.ef_construction}"
    load_s = load_table(conn, xb)
    build_s, mb = build_pg_index(conn, cfg, len(xb))
    if not uses_index(conn, xq[0], cfg.k):
        raise RuntimeError("the planner does not use the HNSW index for the ORDER BY ... LIMIT query")
    points = [pg_point(name, conn, xq, truth, cfg.k, ef) for ef in cfg.pg_efs]
    conn.execute("DROP TABLE t")
    return points, {"n": len(xb), "engine": name, "load s": load_s, "build s": build_s, "index MB": mb}


def faiss_side(cfg: PgConfig, xb: np.ndarray, xq: np.ndarray, truth: np.ndarray) -> tuple[list[list[Point]], list[Row]]:
    """Sweeps of a FAISS HNSW with pgvector's parameters and of the product's index."""
    same, same_s = faiss_hnsw(xb, cfg.m, cfg.ef_construction)
    prod = build(xb, "hnsw")
    names = (f"faiss m={cfg.m} efc={cfg.ef_construction}", f"faiss m={HNSW_M} efc={EF_CONSTRUCTION} (product)")
    sweeps = [[faiss_point(name, idx, xq, truth, cfg.k, ef) for ef in cfg.faiss_efs]
              for name, idx in zip(names, (same, prod.index.index), strict=True)]
    lat, found = time_search(prod.index, xq, cfg.k, None)
    sweeps.append([Point("VectorIndex.search (product path)", EF_SEARCH, lat, recall_at_k(found, truth))])
    builds: list[Row] = [
        {"n": len(xb), "engine": names[0], "load s": None, "build s": same_s,
         "index MB": faiss.serialize_index(same).nbytes / 1e6},
        {"n": len(xb), "engine": names[1], "load s": None, "build s": prod.seconds, "index MB": prod.megabytes},
    ]
    return sweeps, builds


def compare(cfg: PgConfig, conn: psycopg.Connection, n: int) -> SizeResult:
    data = influencers(n, cfg.n_queries, cfg.d, cfg.seed)
    truth = ground_truth(data.xq, data.xb, cfg.k)
    pg_points, pg_build = pg_side(cfg, conn, data.xb, data.xq, truth)
    sweeps, faiss_builds = faiss_side(cfg, data.xb, data.xq, truth)
    pg = pick(pg_points, cfg.target_recall)
    equal = [equal_recall_row(n, pg, pick(sweep, pg.recall)) for sweep in sweeps]
    points = pg_points + [p for sweep in sweeps for p in sweep]
    return SizeResult(points, [pg_build, *faiss_builds], equal)


def run(cfg: PgConfig, pg: EmbeddedPg) -> Section:
    section = Section("faiss vs pgvector")
    points: list[Row] = []
    builds: list[Row] = []
    equal: list[Row] = []
    with psycopg.connect(pg.fresh_database("bench_pgvector"), autocommit=True) as conn:
        register_vector(conn)
        for n in cfg.sizes:
            res = compare(cfg, conn, n)
            points += [point_row(n, p) for p in res.points]
            builds += res.builds
            equal += res.equal_recall
    section.tables += [
        Table(f"single-query sweep, k={cfg.k}, {cfg.n_queries} queries", points),
        Table("build (pgvector: COPY BINARY then CREATE INDEX; FAISS: add)", builds),
        Table(f"at equal recall: pgvector at the lowest ef_search with recall >= {cfg.target_recall}, "
              "FAISS at the lowest efSearch matching that recall", equal),
    ]
    versions = pg.versions()
    section.notes += [
        f"sizes {', '.join(f'{n:,}' for n in cfg.sizes)}; d={cfg.d}; PostgreSQL {versions['postgres']}, "
        f"pgvector {versions['pgvector']}, queries over a local socket with binary numpy parameters",
        f"pgvector build with max_parallel_maintenance_workers={max((os.cpu_count() or 1) - 1, 0)} "
        f"and the graph in maintenance_work_mem; FAISS with {faiss.omp_get_max_threads()} OpenMP threads",
        "FAISS latency is a Python call per query; pgvector latency is a full SQL round trip",
    ]
    section.details = {"config": cfg.__dict__, "versions": versions}
    return section
