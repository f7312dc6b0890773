"""A campaign list to a CSV or Parquet file (``congruence list export``, ``GET
/v1/lists/{name}/export``): each entry's account, its metrics (the columns the bulk export writes,
``export_files.METRIC_COLUMNS``), its collaborations count (as ``export_collabs`` counts it) and
those edges (``worked_with``), and the list's fields. Written to a temporary name and renamed:
no half file ever has the name."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from congruence.core.errors import InvalidInput
from congruence.search.export_files import write_atomic
from congruence.store.list_views import ExportRow, export_rows
from congruence.store.lists import get_list
from congruence.store.records import Store

FORMATS = ("csv", "parquet")
SCHEMA = pa.schema(
    [
        ("list", pa.string()),
        ("brand_id", pa.string()),
        ("influencer_id", pa.string()),
        ("handle", pa.string()),
        ("category", pa.string()),
        ("followers", pa.int64()),
        ("engagement_rate", pa.float64()),
        ("posts_per_week", pa.float64()),
        ("sponsored_share", pa.float64()),
        ("sponsored_ratio", pa.float64()),
        ("follower_growth", pa.float64()),
        ("authenticity_flags", pa.string()),
        ("collaborations", pa.int32()),
        ("worked_with", pa.string()),
        ("status", pa.string()),
        ("note", pa.string()),
        ("version", pa.int32()),
        ("added_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("updated_by", pa.string()),
        ("gone", pa.bool_()),
        ("other_lists", pa.string()),
    ]
)


def format_of(path: Path | str, field: str = "out") -> str:
    """'csv' or 'parquet', from the file's suffix."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidInput(f"must end in .csv or .parquet, got {str(path)!r}", field=field)
    return fmt


def list_table(store: Store, name: str) -> pa.Table:
    """The list ``name`` as a table of ``SCHEMA``, one row per entry, in the order they were added."""
    lst = get_list(store, name)
    rows = export_rows(store, name)
    cols: dict[str, list[object]] = {f: [] for f in ExportRow.__dataclass_fields__}
    for r in rows:
        for f in cols:
            cols[f].append(getattr(r, f))
    n = len(rows)
    return pa.table(
        {"list": [lst.name] * n, "brand_id": [lst.brand_id] * n, **cols},
        schema=SCHEMA,
    )


def to_bytes(table: pa.Table, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
    else:
        pq.write_table(table, buf)
    return buf.getvalue()


def export_list(store: Store, name: str, out: Path) -> int:
    """Write the list ``name`` to ``out`` (.csv or .parquet); returns the rows written."""
    fmt = format_of(out)
    table = list_table(store, name)
    data = to_bytes(table, fmt)
    write_atomic(out, lambda f: f.write(data))
    return table.num_rows
