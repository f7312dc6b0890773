"""Files of an export: the parts folder (spec + finished chunks), chunk writers, assembly.

``<out>.parts/`` holds ``spec.json`` (what the export is: brands, k, filters, format, and
the data it ranks: space, model, index and brand vector versions), one data file and one
``.json`` marker per finished chunk, and a lock. Every file is written to a temporary name,
fsynced and renamed, and a chunk counts as finished only once its marker exists, so an
interrupted run leaves only whole chunks behind. The result is assembled into
``<out>.tmp`` and renamed to ``<out>``: no truncated file ever has the final name.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from congruence.core.errors import Busy, InvalidInput
from congruence.search.export_collabs import CollabColumns
from congruence.search.export_lists import ListColumns
from congruence.search.export_rank import RankedRows
from congruence.search.metric_filters import MetricsIndex
from congruence.store.rows import AccountTable

FORMATS = ("csv", "jsonl", "parquet")
SCHEMA = pa.schema(
    [
        ("brand_id", pa.string()),
        ("influencer_id", pa.string()),
        ("handle", pa.string()),
        ("followers", pa.int64()),
        ("category", pa.string()),
        ("score", pa.float64()),
        ("rank", pa.int32()),
        ("engagement_rate", pa.float64()),
        ("posts_per_week", pa.float64()),
        ("sponsored_share", pa.float64()),
        ("sponsored_ratio", pa.float64()),
        ("follower_growth", pa.float64()),
        ("authenticity_flags", pa.string()),
        ("collaborations", pa.int32()),
        ("collaborated_with", pa.string()),
        ("in_lists", pa.string()),
    ]
)
METRIC_COLUMNS = SCHEMA.names[7:13]  # from the account metrics; empty (null) where unknown
COLLAB_COLUMNS = SCHEMA.names[13:15]  # from the collaboration graph (``export_collabs``)
LIST_COLUMNS = SCHEMA.names[15:]  # from the campaign lists (``export_lists``)


@dataclass(frozen=True)
class ChunkInfo:
    """What a finished chunk holds: brands ranked, rows written, brands skipped (id, reason)."""

    brands: int
    rows: int
    skipped: tuple[tuple[str, str], ...]


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary file, fsync it, rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def parts_folder(out: Path, spec: dict[str, Any], restart: bool) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(folder, stored spec) for ``out``, created or resumed, held under an exclusive lock.

    A folder left by an export with another spec is refused (or discarded with ``restart``):
    its chunks were ranked from other inputs and must not be mixed into this file.
    """
    parts = parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    lock_path = parts.parent / f".{parts.name}.lock"
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another export is writing {out}") from None
        try:
            yield parts, _open_spec(parts, spec, restart)
        finally:
            lock_path.unlink(missing_ok=True)


def _open_spec(parts: Path, spec: dict[str, Any], restart: bool) -> dict[str, Any]:
    stored = _read_spec(parts)
    if stored is not None and restart:
        shutil.rmtree(parts)
        parts.mkdir()
        stored = None
    if stored is None:
        _clear(parts)
        write_atomic(parts / "spec.json", lambda f: f.write(json.dumps(spec, indent=1).encode()))
        _fsync_dir(parts)
        stored = spec
    diffs = [k for k in sorted(set(spec) | set(stored)) if k != "chunk_brands" and spec.get(k) != stored.get(k)]
    if diffs:
        raise InvalidInput(
            f"{parts} holds an unfinished export of something else ({', '.join(diffs)} differ): "
            "rerun with the same options to resume it, or restart to discard it"
        )
    return stored


def _read_spec(parts: Path) -> dict[str, Any] | None:
    try:
        spec = json.loads((parts / "spec.json").read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def _clear(parts: Path) -> None:
    for f in parts.iterdir():
        f.unlink() if f.is_file() else shutil.rmtree(f)


def chunk_path(parts: Path, i: int, fmt: str) -> Path:
    return parts / f"chunk-{i:06d}.{fmt}"


def finished_chunks(parts: Path, fmt: str) -> dict[int, ChunkInfo]:
    """Chunks whose marker and data file both exist."""
    done = {}
    for marker in parts.glob("chunk-*.json"):
        i = int(marker.stem.removeprefix("chunk-"))
        if not chunk_path(parts, i, fmt).is_file():
            continue
        d = json.loads(marker.read_text())
        done[i] = ChunkInfo(d["brands"], d["rows"], tuple((b, r) for b, r in d["skipped"]))
    return done


def write_chunk(
    parts: Path,
    i: int,
    fmt: str,
    ranked: RankedRows,
    table: AccountTable,
    n_brands: int,
    metrics: MetricsIndex | None = None,
    collabs: CollabColumns | None = None,
    lists: ListColumns | None = None,
) -> ChunkInfo:
    """Write chunk ``i`` (data, then its marker) and return what it holds (``metrics``: the
    account metrics aligned with ``table``, ``collabs``: its collaboration graph, ``lists``:
    the brands' campaign lists, for their columns; None: those columns null, or empty)."""
    if fmt == "jsonl":
        body = _jsonl(ranked, table, metrics, collabs, lists)
        write_atomic(chunk_path(parts, i, fmt), lambda f: f.write(body))
    else:
        tab = to_arrow(ranked, table, metrics, collabs, lists)
        write_atomic(chunk_path(parts, i, fmt), lambda f: _write_arrow(tab, fmt, f))
    info = ChunkInfo(n_brands, len(ranked.brand_ids), ranked.skipped)
    marker = {"brands": info.brands, "rows": info.rows, "skipped": [list(s) for s in info.skipped]}
    write_atomic(parts / f"chunk-{i:06d}.json", lambda f: f.write(json.dumps(marker).encode()))
    return info


def _metric_columns(rows: np.ndarray, metrics: MetricsIndex | None) -> list[pa.Array]:
    """engagement_rate, posts_per_week, sponsored_share, sponsored_ratio, follower_growth (monthly),
    authenticity_flags of ``rows``."""
    if metrics is None:
        return [pa.nulls(len(rows), pa.float64())] * 5 + [pa.nulls(len(rows), pa.string())]
    cols: list[pa.Array] = []
    for v in (metrics.er, metrics.posts_per_week, metrics.sponsored_share, metrics.sponsored_ratio, metrics.growth):
        x = v[rows]
        cols.append(pa.array(np.nan_to_num(x), pa.float64(), mask=~np.isfinite(x)))
    done = metrics.computed[rows]
    cols.append(
        pa.array([metrics.flag_names[r] if c else None for r, c in zip(rows.tolist(), done, strict=True)], pa.string())
    )
    return cols


def to_arrow(
    ranked: RankedRows,
    table: AccountTable,
    metrics: MetricsIndex | None = None,
    collabs: CollabColumns | None = None,
    lists: ListColumns | None = None,
) -> pa.Table:
    rows = ranked.rows
    fol = table.followers[rows]
    scores = np.where(np.isfinite(ranked.scores), ranked.scores, np.nan)
    return pa.table(
        [
            pa.array(ranked.brand_ids, pa.string()),
            pa.array([table.ids[r] for r in rows], pa.string()),
            pa.array([table.handles[r] for r in rows], pa.string()),
            pa.array(fol, pa.int64(), mask=fol < 0),
            pa.array([table.categories[r] for r in rows], pa.string()),
            pa.array(scores, pa.float64(), mask=~np.isfinite(ranked.scores)),
            pa.array(ranked.ranks, pa.int32()),
            *_metric_columns(rows, metrics),
            *(collabs or CollabColumns(None)).arrays(rows),
            (lists or ListColumns()).array(ranked.brand_ids, [table.ids[r] for r in rows]),
        ],
        schema=SCHEMA,
    )


def _write_arrow(tab: pa.Table, fmt: str, f: IO[bytes]) -> None:
    if fmt == "csv":
        pacsv.write_csv(tab, f, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    else:
        pq.write_table(tab, f)


def _jsonl(
    ranked: RankedRows,
    table: AccountTable,
    metrics: MetricsIndex | None,
    collabs: CollabColumns | None,
    lists: ListColumns | None,
) -> bytes:
    """One object a line, keys in ``SCHEMA`` order; a score the head could not give is null."""
    middle: dict[int, str] = {}
    tail: dict[int, str] = {}
    mcols = _metric_columns(ranked.rows, metrics) + (collabs or CollabColumns(None)).arrays(ranked.rows)
    lines = []
    for j, (brand, r, score, rank) in enumerate(
        zip(ranked.brand_ids, ranked.rows.tolist(), ranked.scores.tolist(), ranked.ranks.tolist(), strict=True)
    ):
        mid = middle.get(r)
        if mid is None:
            fol = int(table.followers[r])
            mid = middle[r] = json.dumps(
                {
                    "influencer_id": table.ids[r],
                    "handle": table.handles[r],
                    "followers": fol if fol >= 0 else None,
                    "category": table.categories[r],
                },
                ensure_ascii=False,
            )[1:-1]
        end = tail.get(r)
        if end is None:
            end = tail[r] = json.dumps(
                {c: col[j].as_py() for c, col in zip(METRIC_COLUMNS + COLLAB_COLUMNS, mcols, strict=True)},
                ensure_ascii=False,
            )[1:-1]
        s = repr(score) if np.isfinite(score) else "null"
        listed = json.dumps((lists or ListColumns()).text(brand, table.ids[r]), ensure_ascii=False)
        lines.append(
            f'{{"brand_id": {json.dumps(brand, ensure_ascii=False)}, {mid}, "score": {s}, "rank": {rank}, {end}, '
            f'"in_lists": {listed}}}\n'
        )
    return "".join(lines).encode()


def assemble(parts: Path, out: Path, fmt: str, n_chunks: int) -> None:
    """Concatenate the chunks into ``<out>.tmp``, fsync, rename to ``out``, remove the parts."""
    chunks = [chunk_path(parts, i, fmt) for i in range(n_chunks)]

    def write(f: IO[bytes]) -> None:
        if fmt == "parquet":
            with pq.ParquetWriter(f, SCHEMA) as w:
                for c in chunks:
                    w.write_table(pq.read_table(c, schema=SCHEMA))
            return
        if fmt == "csv":
            f.write((",".join(SCHEMA.names) + "\n").encode())
        for c in chunks:
            with c.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

    write_atomic(out, write)
    _fsync_dir(out.parent)
    shutil.rmtree(parts)
