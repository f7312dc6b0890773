"""Sharded serving at 10M accounts on this machine: ``python -m bench --only scale``.

A clustered synthetic corpus (``datasets.synthetic``: each account a theme of the clusters,
4 posts around it, 256-d, the head's space) of 10M influencers (200k with --quick) and 200
brands. The account rows are in PostgreSQL (what shards and ingress read: ids, categories,
followers); the vectors are not: each of 4 shards gets an IVF-PQ index (one coarse quantiser
and codebook trained once on a sample, copied into every shard) with its accounts' float16
vectors and int8 per-post vectors beside it on disk, memory-mapped when served. A child
process builds all of it and exits, so that only the serving processes are measured. The
shards run on Ray Serve on a local cluster; the ingress is a ``ShardedEngine`` in this
process, the same code ``congruence serve --ray-address`` runs. The search's settings
(``ivf.NPROBE``, ``ivf.REFINE_EXTRA``) were chosen by ``bench.ivf_tune`` on queries of its own,
never on these brands.

Measured: the build (generation, the IVF-PQ adds, the files), the ANN bytes an account, the
served recall@10 of retrieval against exact search over the same float32 vectors (computed
while the corpus is generated), match with the head's rerank for one client (p50, p99, and
the machine's major page faults a match: reads of the mapped files that went to disk), and
the resident memory of every serving process by role (this one, the replicas, Ray's own;
PostgreSQL apart). A full run then times the single-process path at 1M (``bench.match_e2e``)
for comparison.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from bench.common import Section, Table, stats
from congruence.core.hashes import shard_of
from congruence.core.settings import Settings, load_settings
from congruence.datasets.synthetic import CATEGORY_SHARES, SyntheticDataset
from congruence.indexer.generations import cached_bytes

D = 256
# a folder to build into and keep: a later run with the same configuration serves that build
# again instead of spending 25 minutes on it (the serving figures are measured anew)
KEEP_ENV = "CONGRUENCE_BENCH_SCALE_KEEP"
TARGETS = {"ann_bytes": 100.0, "recall": 0.95, "p50_ms": 30.0, "p99_ms": 100.0, "rss_bytes": 8e9}


@dataclass(frozen=True)
class ScaleConfig:
    n: int
    shards: int = 4
    posts: int = 4
    brands: int = 200
    queries: int = 100  # brands whose exact top 10 is computed for the recall
    nlist: int = 4096
    chunk: int = 100_000
    seed: int = 0
    refine_bits: int = 8  # the shards' re-score vectors (CONGRUENCE_SHARD_REFINE_BITS)

    @classmethod
    def for_run(cls, quick: bool) -> ScaleConfig:
        bits = load_settings().shard_refine_bits
        return (
            cls(200_000, nlist=256, brands=50, queries=50, refine_bits=bits)
            if quick
            else cls(10_000_000, refine_bits=bits)
        )


def _accounts(settings: Settings, cfg: ScaleConfig) -> tuple[list[str], str]:
    """Write the account rows (brands first, seq = row + 1) and a seeded head in service; the
    influencers' ids and the head's version."""
    from bench.export_speed import _write_vectors
    from congruence.encoders.encoder_set import EncoderSet
    from congruence.store.records import Store
    from congruence.training.deploy import ACTIVE_KEY, encoder_meta, save_checkpoint
    from congruence.training.model import CongruenceHead, HeadConfig

    rng = np.random.default_rng(cfg.seed)
    brands = [f"brand_{i:06d}" for i in range(cfg.brands)]
    ids = [f"infl_{i:08d}" for i in range(cfg.n)]
    shares = np.array(list(CATEGORY_SHARES.values()))
    cats = np.array(list(CATEGORY_SHARES))[rng.choice(len(shares), cfg.n, p=shares / shares.sum())]
    followers = (10 ** rng.uniform(3, 6, cfg.n)).astype(np.int64)
    with Store.open(settings) as store:
        mids = EncoderSet(settings).model_ids(store)
        torch.manual_seed(cfg.seed)
        head = CongruenceHead(HeadConfig(mids.d_image, mids.d_text, d_model=D))
        save_checkpoint(settings, head, encoder_meta(mids))
        with (
            store.conn.cursor() as cur,
            cur.copy("COPY accounts (seq, id, kind, handle, category, followers, row_hash) FROM STDIN") as copy,
        ):
            for j, b in enumerate(brands):
                copy.write_row((j + 1, b, "brand", b, "fitness", 50_000, "-"))
            for j, (a, c, f) in enumerate(zip(ids, cats.tolist(), followers.tolist(), strict=True)):
                copy.write_row((cfg.brands + j + 1, a, "influencer", a, c, f, "-"))
        store.conn.execute("SELECT setval(pg_get_serial_sequence('accounts', 'seq'), %s)", (cfg.brands + cfg.n,))
        space = SyntheticDataset(D, 0, 0, cfg.seed)
        posts = theme_posts(space, len(brands), cfg.posts, np.random.default_rng(cfg.seed + 1))
        pooled = pool_posts(posts, cfg.posts)
        offsets = np.arange(len(brands) + 1, dtype=np.int64) * cfg.posts
        _write_vectors(store, f"head:{head.version}", brands, offsets, posts.astype(np.float16), pooled)
        store.set_meta(ACTIVE_KEY, head.version)
    return ids, head.version


def theme_posts(space: SyntheticDataset, n: int, per: int, rng: np.random.Generator) -> np.ndarray:
    """(n * per, D) posts, ``per`` an account around its theme, L2-normalised."""
    themes = np.repeat(space.sample(n, rng), per, axis=0)
    posts = themes + 0.08 * rng.standard_normal(themes.shape, dtype=np.float32)
    return posts / np.linalg.norm(posts, axis=1, keepdims=True)


def pool_posts(posts: np.ndarray, per: int) -> np.ndarray:
    """Each account's vector: the mean of its posts, L2-normalised (the head's pooling, simplified)."""
    v = posts.reshape(-1, per, D).mean(axis=1)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _build(settings: Settings, cfg: ScaleConfig, ids: list[str], version: str, xq: np.ndarray) -> dict[str, Any]:
    """Every shard's IVF-PQ index from generated vectors, saved and published; the times,
    the ANN bytes an account, and the exact top 10 of each query (seqs)."""
    from congruence.indexer import ivf
    from congruence.indexer.index import VectorIndex
    from congruence.indexer.index_sync import space_dir
    from congruence.indexer.post_matrix import QuantizedPosts
    from congruence.indexer.publish import PUBLISHED_KEY, Publication, PublishedIndex
    from congruence.store.records import Store

    space_name = f"head:{version}"
    owner = np.fromiter((shard_of(a, cfg.shards) for a in ids), np.int16, count=len(ids))
    seqs = np.arange(cfg.brands + 1, cfg.brands + 1 + cfg.n, dtype=np.int64)
    space = SyntheticDataset(D, 0, 0, cfg.seed)
    times = {"generate": 0.0, "add": 0.0, "save": 0.0}
    t = time.perf_counter()
    template = ivf.train_ivfpq(
        pool_posts(theme_posts(space, 40 * cfg.nlist, cfg.posts, np.random.default_rng(7)), cfg.posts), cfg.nlist
    )
    times["train"] = time.perf_counter() - t
    best_d = np.full((len(xq), 10), -np.inf, np.float32)
    best_s = np.full((len(xq), 10), -1, np.int64)
    published, ann_bytes, file_bytes = [], 0, 0
    for i in range(cfg.shards):
        mine = np.flatnonzero(owner == i)
        index = VectorIndex(D, "ivfpq", "pq", post_dim=D, template=template, refine_bits=cfg.refine_bits)
        for start in range(0, len(mine), cfg.chunk):
            t = time.perf_counter()
            rows = mine[start : start + cfg.chunk]
            rng = np.random.default_rng([cfg.seed, i, start])
            posts = theme_posts(space, len(rows), cfg.posts, rng)
            vecs = pool_posts(posts, cfg.posts)
            scores = np.concatenate([best_d, xq @ vecs.T], axis=1)
            labels = np.concatenate([best_s, np.broadcast_to(seqs[rows], (len(xq), len(rows)))], axis=1)
            top = np.argsort(-scores, axis=1)[:, :10]
            best_d, best_s = np.take_along_axis(scores, top, axis=1), np.take_along_axis(labels, top, axis=1)
            quantized = QuantizedPosts.of(list(posts.reshape(len(rows), cfg.posts, D)), D)
            times["generate"] += time.perf_counter() - t
            t = time.perf_counter()
            index.add(seqs[rows], np.ones(len(rows), np.int64), vecs, quantized)
            times["add"] += time.perf_counter() - t
        t = time.perf_counter()
        man = index.save(space_dir(settings.index_dir, space_name, (i, cfg.shards)), space_name, space_name, len(mine))
        times["save"] += time.perf_counter() - t
        ann_bytes += (index.source / "index.faiss").stat().st_size if index.source else 0
        file_bytes += sum(f.stat().st_size for f in index.source.iterdir()) if index.source else 0
        folder = index.source.relative_to(settings.index_dir.resolve()).as_posix() if index.source else ""
        published.append(
            PublishedIndex(space_name, space_name, folder, man.count, man.version_sum, "ivfpq", "pq", D, D)
        )
        del index
    with Store.open(settings) as store, store.conn.transaction():
        pub = Publication(store.bump_generation(), {}, time.time(), {space_name: tuple(published)})
        store.set_meta(PUBLISHED_KEY, pub.to_json())
    return {"times": times, "ann_bytes": ann_bytes / cfg.n, "file_gb": file_bytes / 1e9, "truth": best_s.tolist()}


def _build_all(settings: Settings, cfg: ScaleConfig) -> dict[str, Any]:
    """The account rows, the head and every shard, built and published (in a child process of
    its own, so that the serving processes are measured alone)."""
    from congruence.store.records import Store
    from congruence.store.vectors import VectorStore

    t = time.perf_counter()
    ids, version = _accounts(settings, cfg)
    rows_s = time.perf_counter() - t
    with Store.open(settings) as store:
        _, _, xq = VectorStore(store).account_vectors(f"head:{version}", ids=_brands(cfg))
    return {"rows_s": rows_s, **_build(settings, cfg, ids, version, xq[: cfg.queries])}


def _brands(cfg: ScaleConfig) -> list[str]:
    return [f"brand_{i:06d}" for i in range(cfg.brands)]


def _memory() -> dict[str, dict[str, float]]:
    """Resident memory of every serving process, by role: this process (the ingress), the
    shard replicas, and Ray's own (raylet, GCS, Serve's controller, idle workers); PostgreSQL
    apart. ``rss`` counts each process's pages whole, the memory-mapped files' pages it touched
    included, split into ``anon`` (the process's own memory) and ``file`` (pages of mapped
    files: the page cache's, which the kernel drops under pressure); ``pss`` divides each
    shared page among the processes that map it, so the sum is what they hold together."""
    me = psutil.Process()
    groups: dict[str, dict[str, float]] = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            cmd = " ".join(p.cmdline())
            if "postgres" in p.name() or "postgres" in cmd.split(" ")[0]:
                continue
            full = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        role = (
            "ingress"
            if p.pid == me.pid
            else "shard workers"
            if "ShardWorker" in cmd
            else "shard replicas (Serve's, each supervising a worker)"
            if "ServeReplica" in cmd
            else "Ray's processes"
        )
        g = groups.setdefault(role, {"processes": 0, "rss_gib": 0.0, "anon_gib": 0.0, "file_gib": 0.0, "pss_gib": 0.0})
        g["processes"] += 1
        g["rss_gib"] += full.rss / 2**30
        g["pss_gib"] += full.pss / 2**30
        kb = _status_kb(p.pid)
        g["anon_gib"] += kb.get("RssAnon", 0) / 2**20
        g["file_gib"] += (kb.get("RssFile", 0) + kb.get("RssShmem", 0)) / 2**20
    return groups


def _major_faults() -> int:
    """The machine's major page faults so far (``/proc/vmstat``: reads that went to disk)."""
    for line in Path("/proc/vmstat").read_text().splitlines():
        if line.startswith("pgmajfault "):
            return int(line.split()[1])
    return 0


def _status_kb(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/status (RssAnon, RssFile, ...); empty when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in lines) if v.strip().endswith("kB")}


def run(cfg: ScaleConfig, tmp: Path, single: int | None = None) -> Section:
    """single: also time the single-process path (``bench.match_e2e``) at this many accounts,
    in the same run (None: 1M in a full run, none with --quick)."""
    import multiprocessing

    import ray

    from congruence.search.ray_serve import deploy_shards
    from congruence.search.shards import ShardedEngine
    from congruence.store.embedded_pg import embedded_pg
    from congruence.store.records import Store
    from congruence.store.vectors import VectorStore

    section = Section(f"scale: {cfg.n:,} influencers x {cfg.posts} posts, {cfg.shards} shards on Ray Serve, IVF-PQ")
    keep = os.environ.get(KEEP_ENV)
    tmp = Path(keep).resolve() if keep else tmp
    record = tmp / "built.json"
    kept = json.loads(record.read_text()) if keep and record.exists() else None
    if kept is not None and kept["config"] != asdict(cfg):
        raise SystemExit(f"{record} was built with another configuration: remove {tmp} or name another folder")
    with embedded_pg(tmp / "scale-pg" / "pg") as pg:
        settings = Settings(
            home=tmp / "scale-home",
            database_url=str(pg.server.get_uri(database="scale")) if kept else pg.fresh_database("scale"),
            device="cpu",
            shard_refine_bits=cfg.refine_bits,
            post_vectors=load_settings().post_vectors,  # how the shards read them: not the build's
        )
        if kept is None:
            with multiprocessing.get_context("spawn").Pool(1) as builder:
                built = builder.apply(_build_all, (settings, cfg))
            if keep:
                record.write_text(json.dumps({"config": asdict(cfg), "built": built}))
        else:
            built = kept["built"]
            section.notes.append(f"the build was reused from {tmp} ({KEEP_ENV}): its times are that run's")
        with Store.open(settings) as store:
            from congruence.training.deploy import ACTIVE_KEY

            version = store.meta_values([ACTIVE_KEY])[ACTIVE_KEY]
            _, got, xq_all = VectorStore(store).account_vectors(f"head:{version}", ids=_brands(cfg))
        xq = xq_all[: cfg.queries]
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp / "ray"))
        t = time.perf_counter()
        clients = deploy_shards("local", settings, cfg.shards, 1)
        with ShardedEngine(settings, clients) as engine:
            load_s = time.perf_counter() - t
            snap = engine.current()
            _, found = engine.retrieve(snap, xq, 10)
            truth = built["truth"]
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth, strict=True)]))
            for b in got[:10]:
                engine.match_brand(b, 20)  # warm
            lat = []
            faults = _major_faults()
            for b in got:
                t = time.perf_counter()
                hits = engine.match_brand(b, 20)
                lat.append(time.perf_counter() - t)
                assert len(hits) == 20
            faults = _major_faults() - faults
            memory = _memory()
            cached = sum(cached_bytes(f) for f in settings.index_dir.rglob("*") if f.is_file())
        ray.shutdown()
    s = stats(np.asarray(lat))
    times = built["times"]
    rss = sum(g["rss_gib"] for g in memory.values())
    pss = sum(g["pss_gib"] for g in memory.values())
    anon = sum(g["anon_gib"] for g in memory.values())
    row = {
        "influencers": cfg.n,
        "rows to PostgreSQL s": built["rows_s"],
        "train IVF-PQ s": times["train"],
        "generate s": times["generate"],
        "IVF-PQ add s": times["add"],
        "save s": times["save"],
        "shards loaded s": load_s,
        "ANN bytes/account": built["ann_bytes"],
        "re-score bits": cfg.refine_bits,
        "post vectors": settings.post_vectors,
        "shard files GB (all, on disk)": built["file_gb"],
        "served recall@10": recall,
        "match p50 ms": s.median_ms,
        "match p99 ms": s.p99_ms,
        "major page faults a match": faults / len(got),
        "RSS GiB (all serving processes)": rss,
        "of which anonymous GiB": anon,
        "PSS GiB": pss,
        "shard files in the page cache GiB": cached / 2**30,
    }
    met = {
        "ANN bytes/account <= 100": float(built["ann_bytes"]) <= TARGETS["ann_bytes"],
        "recall@10 >= 0.95": recall >= TARGETS["recall"],
        "p50 <= 30 ms": s.median_ms <= TARGETS["p50_ms"],
        "p99 <= 100 ms": s.p99_ms <= TARGETS["p99_ms"],
        "RSS <= 8 GB": rss * 2**30 <= TARGETS["rss_bytes"],
    }
    section.tables.append(Table("build and serve (1 client, k=20, the head reranking 200 candidates)", [row]))
    section.tables.append(
        Table("resident memory by process (PostgreSQL apart)", [{"role": r, **g} for r, g in memory.items()])
    )
    section.notes += [f"target {k}: {'met' if v else 'MISSED'}" for k, v in met.items()]
    section.details = {"config": asdict(cfg), "row": json.loads(json.dumps(row, default=float)), "targets": met}
    section.details["memory"] = memory
    section.details["targets_met"] = all(met.values()) if cfg.n >= 10_000_000 else None
    single = single if single is not None else (0 if cfg.n < 10_000_000 else 1_000_000)
    if single:
        from bench import match_e2e
        from bench.match_e2e_store import E2eConfig

        one = match_e2e.run(E2eConfig((single,), brands=100), tmp / "single")
        section.tables += [replace(t, title=f"single process at {single:,}: {t.title}") for t in one.tables]
        section.details["single_process"] = one.details
    return section
