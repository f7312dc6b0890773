"""Bulk shortlist export: the top-k influencers of many brands, written to one file.

One row per (brand, rank): brand_id, influencer_id, handle, followers, category, score,
rank, the influencer's account metrics (engagement_rate, posts_per_week,
sponsored_share, sponsored_ratio, follower_growth, authenticity_flags: the signals raised, ';'-separated)
and its collaborations (collaborations: how many handles it worked with; collaborated_with:
its edges with the handles the filters name, ``export_collabs``) and ``in_lists`` (the brand's
campaign lists holding it, ``export_lists``); the rows of a brand are
what ``Engine.match_brand(brand, k, filters)`` returns. Brands go
through FAISS and the head's rerank in batches (``export_rank``); each batch is written
as a chunk under ``<out>.parts/`` (``export_files``), so an interrupted export resumes from
its finished chunks, and the file appears under its final name only when complete.

A rerun whose spec differs from the one in ``<out>.parts/`` (other brands, k, filters or
format, or data that changed since: another head, an ingest) is refused rather than mixed;
``restart=True`` discards the old parts. The chunk size is the first run's
``batch_brands``, whatever a resuming run asks for.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from congruence.core.errors import InvalidInput, NotFound
from congruence.core.idfile import read_id_lines
from congruence.search.collab_rank import check_signals
from congruence.search.engine import MAX_K, Engine, Snapshot
from congruence.search.export_collabs import CollabColumns
from congruence.search.export_files import (
    FORMATS,
    assemble,
    finished_chunks,
    parts_folder,
    write_chunk,
)
from congruence.search.export_lists import ListColumns
from congruence.search.export_rank import BatchRanker, RankedRows
from congruence.search.filters import Filters
from congruence.store.records import Store

if TYPE_CHECKING:  # Ray is an optional extra, imported only when a cluster is named
    from congruence.search.ray_export import RayRanker

__all__ = ["FORMATS", "ExportReport", "ExportSpec", "read_brand_file", "run_export"]
logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
MAX_BATCH = 100_000


@dataclass(frozen=True)
class ExportSpec:
    """What to export. brands: ids in output order (None = every brand, in store order)."""

    brands: tuple[str, ...] | None = None
    k: int = 100
    fmt: str = "csv"
    filters: Filters = field(default_factory=Filters)
    signals: str = "all"  # 'content': without the collaboration signal (search/collab_rank.py)

    def __post_init__(self) -> None:
        check_signals(self.signals)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise InvalidInput(f"must be a whole number from 1 to {MAX_K}, got {self.k!r}", field="k")
        if self.fmt not in FORMATS:
            raise InvalidInput(f"must be one of {', '.join(FORMATS)}, got {self.fmt!r}", field="format")
        if self.brands is not None and not self.brands:
            raise InvalidInput("expects at least one brand id", field="brands")


@dataclass(frozen=True)
class ExportReport:
    """path: the file written; brands: brands in the job (skipped ones included); rows:
    rows written; resumed_brands: brands taken from an interrupted run's finished chunks;
    skipped: (brand id, reason) of brands with no rows; seconds: wall time of this run;
    ray: with a Ray cluster, what ran where (``RayRanker.report``), else None; warnings: why
    the filters may give less than they seem to ask for (``Filters.warnings``)."""

    path: Path
    brands: int
    rows: int
    resumed_brands: int
    skipped: tuple[tuple[str, str], ...]
    seconds: float
    ray: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["skipped"] = [{"brand_id": b, "reason": r} for b, r in self.skipped]
        d["warnings"] = list(self.warnings)
        return d


def read_brand_file(path: Path, store: Store | None = None) -> tuple[str, ...]:
    """Brand ids, one a line (blank lines and '#' comments skipped, duplicates dropped).

    With a store, an id that is not a brand there is refused, naming its line.
    """
    first_line = read_id_lines(path, "brand")
    if store is not None:
        _check_brands(store.account_kinds(list(first_line)), list(first_line), lambda i, b: f"{path}:{first_line[b]}")
    return tuple(first_line)


def _check_brands(kinds: Mapping[str, str], brands: list[str], where: Callable[[int, str], str]) -> None:
    """Refuse ids that are not brands (``kinds``: account id -> kind, of those that exist)."""
    bad = [
        f"{where(i, b)}: " + (f"unknown brand {b!r}" if b not in kinds else f"{b!r} is an influencer, not a brand")
        for i, b in enumerate(brands)
        if kinds.get(b) != "brand"
    ]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise NotFound("; ".join(bad[:5]) + more)


def _brands(engine: Engine, spec: ExportSpec) -> list[str]:
    if spec.brands is None:
        return engine.brand_ids()
    brands = list(dict.fromkeys(spec.brands))
    _check_brands(engine.account_kinds(brands), brands, lambda i, b: f"brands[{i}]")
    return brands


def _fingerprint(
    engine: Engine, snap: Snapshot, spec: ExportSpec, brands: list[str], batch_brands: int
) -> dict[str, Any]:
    """What the rows depend on; a resumed run must match it."""
    brand_versions = engine.reader.versions(snap.space, brands)
    index = snap.index
    return {
        "brands": "all" if spec.brands is None else "list",
        "brands_sha256": hashlib.sha256("\n".join(brands).encode()).hexdigest(),
        "n_brands": len(brands),
        "k": spec.k,
        "format": spec.fmt,
        "filters": spec.filters.to_json(),
        "signals": spec.signals,
        "space": snap.space,
        "model": snap.model,
        "candidates": engine.settings.candidates if snap.head is not None else None,
        "index": {"size": index.n_alive, "version_sum": int(index.versions[index.alive].sum())},
        # the accounts of sharded serving are on the shards: the generation names what they hold
        **({"shards_generation": snap.generation} if snap.shards is not None else {}),
        "metrics": snap.metrics.version if snap.metrics is not None else None,
        "collaborations": snap.collabs.version if snap.collabs is not None else None,
        "brand_version_sum": sum(brand_versions.values()),
        "chunk_brands": batch_brands,
    }


def run_export(
    engine: Engine,
    spec: ExportSpec,
    out: Path,
    progress: Progress | None = None,
    batch_brands: int = 256,
    restart: bool = False,
    ray_address: str | None = None,
) -> ExportReport:
    """Export ``spec`` to ``out`` (resuming ``<out>.parts/`` when present); see the module doc.

    progress(done_brands, total_brands) is called once at the start (with the brands
    resumed) and after every chunk. Reads the engine's snapshot, never changes it.
    ray_address: rank the chunks on this Ray cluster (search.ray_export); same rows.
    """
    t0 = time.perf_counter()
    if isinstance(batch_brands, bool) or not isinstance(batch_brands, int) or not 1 <= batch_brands <= MAX_BATCH:
        raise InvalidInput(f"must be a whole number from 1 to {MAX_BATCH}, got {batch_brands!r}", field="batch_brands")
    out = Path(out)
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder; give a file path")
    brands = _brands(engine, spec)
    spec = replace(spec, filters=engine.with_lists(spec.filters))  # a campaign list as it is now
    on_ray = _ray_ranker(ray_address, engine) if ray_address is not None else None
    ranker = BatchRanker(
        engine.current(), engine.reader, spec.k, spec.filters, engine.settings.candidates, spec.signals
    )
    engine.check_screened(ranker.snap, spec.filters)
    warnings = tuple(spec.filters.warnings(ranker.snap.collabs))
    for w in warnings:
        logger.info("export to %s: %s", out, w)  # the report carries them: the CLI prints them, a job keeps them
    fingerprint = _fingerprint(engine, ranker.snap, spec, brands, batch_brands)
    out.parent.mkdir(parents=True, exist_ok=True)
    with parts_folder(out, fingerprint, restart) as (parts, stored):
        size = int(stored["chunk_brands"])
        n_chunks = (len(brands) + size - 1) // size
        done = finished_chunks(parts, spec.fmt)
        resumed = sum(c.brands for c in done.values())
        if resumed:
            logger.info("resuming %s: %d of %d brands already exported", out, resumed, len(brands))
        finished = resumed
        if progress is not None:
            progress(finished, len(brands))
        todo = {i: brands[i * size : (i + 1) * size] for i in range(n_chunks) if i not in done}
        collab_columns = CollabColumns.of(ranker.snap.collabs, spec.filters)  # read once, for every chunk
        with engine.reading() as store:
            list_columns = ListColumns.of(store, brands)
        for i, ranked in _ranked(ranker, spec, todo, on_ray):
            done[i] = write_chunk(
                parts,
                i,
                spec.fmt,
                ranked,
                ranker.snap.table,
                len(todo[i]),
                ranker.snap.metrics,
                collab_columns,
                list_columns,
            )
            finished += len(todo[i])
            if progress is not None:
                progress(finished, len(brands))
        assemble(parts, out, spec.fmt, n_chunks)
    infos = [done[i] for i in range(n_chunks)]
    return ExportReport(
        out,
        len(brands),
        sum(c.rows for c in infos),
        resumed,
        tuple(s for c in infos for s in c.skipped),
        time.perf_counter() - t0,
        on_ray.report() if on_ray is not None else None,
        warnings,
    )


def _ray_ranker(address: str, engine: Engine) -> RayRanker:
    from congruence.search.ray_export import RayRanker

    return RayRanker.connect(address, engine)


def _ranked(
    ranker: BatchRanker, spec: ExportSpec, todo: Mapping[int, Sequence[str]], on_ray: RayRanker | None
) -> Iterator[tuple[int, RankedRows]]:
    """(chunk number, rows) of every chunk in ``todo``: here in order, or on Ray as they finish."""
    if on_ray is not None:
        return on_ray.rank(ranker.snap, spec.k, spec.filters, todo, spec.signals)
    return ((i, ranker.rank(chunk)) for i, chunk in todo.items())
