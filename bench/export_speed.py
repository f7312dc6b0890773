"""Bulk export speed: every brand's top-100 over the influencers, reranked by a head in service.

The issue's target: 10,000 brands x top-100 over 100,000 influencers in at most 60 s on
2 cores. Builds a real store in an embedded PostgreSQL with synthetic vectors written
straight into the head's space (256-d, the production head width: what FAISS indexes and
the rerank reads), a seeded untrained head in service (its weights do not change the cost),
then times ``run_export`` and, in the same process, the per-brand ``Engine.match_brand``
loop on a sample of brands (the ratio is brands/s of the two). The pooled (untrained)
vectors the store keeps as the head space's source are 8-d placeholders: with a head in
service nothing reads them. A stage breakdown says where the time goes.

    python -m bench.export_speed [--quick] [--out bench/results/export-speed.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import congruence.search.export as export_mod
from bench.common import Section, Table, format_section, machine_info, timed_calls
from congruence.core.settings import Settings
from congruence.datasets.synthetic import CATEGORY_SHARES, SyntheticDataset
from congruence.encoders.encoder_set import EncoderSet
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.store.embedded_pg import embedded_pg
from congruence.store.records import Store
from congruence.training.deploy import (
    ACTIVE_KEY,
    encoder_meta,
    head_space,
    publish_current,
    save_checkpoint,
)
from congruence.training.model import CongruenceHead, HeadConfig

D_HEAD = 256
TARGET_S = 60.0


@dataclass(frozen=True)
class ExportConfig:
    brands: int
    influencers: int
    k: int = 100
    posts: tuple[int, int] = (4, 12)  # posts per account, uniform, inclusive
    baseline_brands: int = 200  # brands timed through match_brand one by one
    batch_brands: int = 256
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> ExportConfig:
        return cls(1_000, 10_000, baseline_brands=100) if quick else cls(10_000, 100_000)


def _synthetic_posts(n_accounts: int, cfg: ExportConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (n+1,), per-post vectors (n_posts, 256) float16, L2-normalised) around each account's theme."""
    counts = rng.integers(cfg.posts[0], cfg.posts[1] + 1, n_accounts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    themes = SyntheticDataset(D_HEAD, 0, 0, cfg.seed).sample(n_accounts, rng)
    posts = np.repeat(themes, counts, axis=0) + 0.08 * rng.standard_normal((int(offsets[-1]), D_HEAD), np.float32)
    posts /= np.linalg.norm(posts, axis=1, keepdims=True)
    return offsets, posts.astype(np.float16)


def build_store(settings: Settings, cfg: ExportConfig) -> dict[str, float]:
    """Accounts, a head in service and its space, written straight into PostgreSQL; seconds per step."""
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    t = time.perf_counter()
    n = cfg.brands + cfg.influencers
    ids = [f"brand_{i:06d}" for i in range(cfg.brands)] + [f"infl_{i:07d}" for i in range(cfg.influencers)]
    shares = np.array(list(CATEGORY_SHARES.values()))
    cats = rng.choice(list(CATEGORY_SHARES), n, p=shares / shares.sum())
    followers = (10 ** rng.uniform(3, 6, n)).astype(np.int64)
    offsets, posts = _synthetic_posts(n, cfg, rng)
    with Store.open(settings) as store:
        mids = EncoderSet(settings).model_ids(store)  # known dims: no encoder is loaded
        head = CongruenceHead(HeadConfig(mids.d_image, mids.d_text, d_model=D_HEAD))
        save_checkpoint(settings, head, encoder_meta(mids))
        pooled = head.pool_projected(posts.astype(np.float32), offsets)
        times = {"generate": time.perf_counter() - t}
        t = time.perf_counter()
        kinds = ["brand"] * cfg.brands + ["influencer"] * cfg.influencers
        write_store(store, head.version, (ids, kinds, cats, followers), offsets, posts, pooled)
        times["write_postgres"] = time.perf_counter() - t
    return times


def write_store(
    store: Store,
    version: str,
    accounts: tuple[list[str], list[str], Any, np.ndarray],
    offsets: np.ndarray,
    posts: np.ndarray,
    pooled: np.ndarray,
) -> None:
    """The accounts (ids, kinds, categories, followers), their vectors in head ``version``'s
    space, and that head in service: a store as ingest and deploy would leave it."""
    ids, kinds, cats, followers = accounts
    with (
        store.conn.cursor() as cur,
        cur.copy("COPY accounts (id, kind, handle, category, followers, row_hash, pool_dirty) FROM STDIN") as copy,
    ):
        for a, kind, cat, fol in zip(ids, kinds, cats, followers.tolist(), strict=True):
            copy.write_row((a, kind, a, cat, fol, "-", False))
    _write_vectors(store, head_space(version), ids, offsets, posts, pooled)
    store.set_meta(ACTIVE_KEY, version)


def _write_vectors(
    store: Store, space: str, ids: list[str], offsets: np.ndarray, posts: np.ndarray, pooled: np.ndarray
) -> None:
    """Placeholder pooled vectors (the head space's source versions), then the head space."""
    conn = store.conn
    placeholder = np.full(8, 8**-0.5, np.float32)
    counts = np.diff(offsets).tolist()
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY account_vectors (account_id, space, embedding, n_posts) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["text", "text", "vector", "int4"])
        for a, c in zip(ids, counts, strict=True):
            copy.write_row((a, "pooled", placeholder, c))
    rows = conn.execute("SELECT account_id, version FROM account_vectors WHERE space = 'pooled'").fetchall()
    version: dict[str, int] = dict(rows)
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY account_vectors (account_id, space, embedding, n_posts, source_version,"
            " post_vectors) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["text", "text", "vector", "int4", "int8", "bytea"])
        for j, (a, c) in enumerate(zip(ids, counts, strict=True)):
            copy.write_row((a, space, pooled[j], c, version[a], posts[offsets[j] : offsets[j + 1]].tobytes()))
    conn.execute("ANALYZE")


def stage_timer() -> AbstractContextManager[dict[str, float]]:
    """Seconds spent in each stage of ``run_export`` (wrapped for the duration)."""
    from congruence.indexer.index import VectorIndex
    from congruence.indexer.post_matrix import PostMatrix
    from congruence.store.vectors import VectorStore

    return timed_calls(
        [
            (VectorIndex, "search", "faiss search"),
            (PostMatrix, "padded", "gather + pad candidates (in memory)"),
            (CongruenceHead, "score", "head forward (several brands a pass)"),
            (VectorStore, "account_vectors", "fetch brand vectors (PostgreSQL)"),
            (VectorStore, "post_vectors", "fetch brands' per-post vectors (PostgreSQL)"),
            (export_mod, "write_chunk", "write chunks"),
            (export_mod, "assemble", "assemble the file"),
        ]
    )


def agreement(
    engine: Engine,
    rows: dict[str, list[tuple[str, float]]],
    brands: Sequence[str],
    k: int,
    on_each: Callable[[], None] | None = None,
) -> tuple[float, dict[str, float]]:
    """(seconds of the match_brand loop over ``brands``, agreement of its results with the export)."""
    same_order = 0
    max_diff = 0.0
    t = time.perf_counter()
    got = {b: engine.match_brand(b, k) for b in brands}
    seconds = time.perf_counter() - t
    for b in brands:
        want = [(h.influencer_id, h.score) for h in got[b]]
        have = rows.get(b, [])
        same_order += [i for i, _ in want] == [i for i, _ in have]
        if len(want) == len(have):
            max_diff = max(
                [max_diff] + [abs(x - y) for (_, x), (_, y) in zip(want, have, strict=True) if np.isfinite(x)]
            )
    return seconds, {"brands_identical_ranking": same_order / max(len(brands), 1), "max_score_diff": max_diff}


def read_export(path: Path, brands: set[str]) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    with path.open(newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for b, infl, *_, score, _rank in rows:
            if b in brands:
                out[b].append((infl, float(score) if score else float("-inf")))
    return out


def run(cfg: ExportConfig, tmp: Path) -> Section:
    section = Section(f"export: {cfg.brands:,} brands x top-{cfg.k} over {cfg.influencers:,} influencers, head rerank")
    with embedded_pg(tmp / "pg-root" / "pg") as pg:
        settings = Settings(home=tmp / "home", database_url=pg.fresh_database("export"), device="cpu")
        setup = build_store(settings, cfg)
        t = time.perf_counter()
        publish_current(settings)  # the writer's step: the index built from PostgreSQL and published
        with Engine(settings) as engine:
            setup["engine_start_index_build"] = time.perf_counter() - t
            snap = engine.snapshot
            assert snap.head is not None and snap.index.n_alive == cfg.influencers
            out = tmp / "shortlist.csv"
            with stage_timer() as spent:
                report = run_export(engine, ExportSpec(None, cfg.k, "csv"), out, batch_brands=cfg.batch_brands)
            sample = [
                f"brand_{i:06d}"
                for i in np.random.default_rng(1).choice(cfg.brands, cfg.baseline_brands, replace=False)
            ]
            base_s, agree = agreement(engine, read_export(out, set(sample)), sample, cfg.k)
    export_rate = report.brands / report.seconds
    base_rate = len(sample) / base_s
    met = report.seconds <= TARGET_S if (cfg.brands, cfg.influencers) == (10_000, 100_000) else None
    section.tables.append(
        Table(
            "throughput",
            [
                {
                    "path": "run_export (batched)",
                    "brands": report.brands,
                    "seconds": report.seconds,
                    "brands/s": export_rate,
                    "rows": report.rows,
                },
                {
                    "path": "match_brand loop (sample)",
                    "brands": len(sample),
                    "seconds": base_s,
                    "brands/s": base_rate,
                    "rows": None,
                },
            ],
        )
    )
    other = report.seconds - sum(spent.values())
    stages = {**spent, "other (python loop, rows)": other}
    section.tables.append(
        Table(
            "where run_export's time goes",
            [{"stage": k, "seconds": v, "share": v / report.seconds} for k, v in stages.items()],
        )
    )
    section.tables.append(Table("set-up (not timed)", [{"step": k, "seconds": v} for k, v in setup.items()]))
    section.notes.append(
        f"batched export is {export_rate / base_rate:.1f}x the per-brand match_brand loop "
        f"({export_rate:.0f} vs {base_rate:.1f} brands/s, same process)"
    )
    section.notes.append(
        f"agreement with match_brand on {len(sample)} sampled brands: "
        f"{agree['brands_identical_ranking']:.1%} identical rankings, "
        f"max score difference {agree['max_score_diff']:.2g}"
    )
    if met is not None:
        section.notes.append(
            f"target {TARGET_S:.0f} s for 10,000 x top-100 over 100k: "
            f"{'met' if met else 'MISSED'} ({report.seconds:.1f} s)"
        )
    section.details = {
        "config": asdict(cfg),
        "report": report.to_dict(),
        "stages_s": dict(spent),
        "setup_s": setup,
        "export_brands_per_s": export_rate,
        "match_brand_brands_per_s": base_rate,
        "speedup": export_rate / base_rate,
        "agreement": agree,
        "targets_met": met,
        "index": {"kind": snap.index.kind, "size": snap.index.n_alive, "dim": snap.index.dim},
        "candidates": settings.candidates,
    }
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.export_speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1,000 brands x 10,000 influencers (default: 10,000 x 100,000)")
    p.add_argument("--out", type=Path, help="JSON result (default bench/results/export-speed[-quick].json)")
    args = p.parse_args(argv)
    cfg = ExportConfig.for_run(args.quick)
    machine = machine_info()
    print(
        f"export bench: {machine['cpu_model']}, {machine['cpus_usable']} cores, torch threads "
        f"{machine['torch_threads']}, load avg {machine['load_avg_1_5_15']}",
        flush=True,
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="congruence-export-bench-") as tmp:
        section = run(cfg, Path(tmp))
    section.seconds = time.perf_counter() - t
    print(format_section(section))
    out = args.out or Path(__file__).resolve().parent / "results" / f"export-speed{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine["load_avg_end_1_5_15"] = machine_info()["load_avg_1_5_15"]
    out.write_text(json.dumps({"machine": machine, "section": asdict(section)}, indent=1, default=str) + "\n")
    print(f"results in {out}")
    return 1 if section.details.get("targets_met") is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
