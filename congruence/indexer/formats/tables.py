"""Reading CSV or Parquet tables: ``congruence ingest --format table POSTS --accounts ACCOUNTS``.

Columns are named as in the JSONL format (posts: id, account_id, image, caption, likes,
comments, ts, sponsored, tagged; accounts: id, kind, handle, category, followers, followers_at), or mapped
with ``--map field=column`` (``posts.field=column`` / ``accounts.field=column`` when only
one table uses that name). Other columns are kept as the row's extra fields. Image paths are
relative to the posts table's folder. Every row goes through the JSONL reader's checks; a
bad one is a ``RowError`` with the file, the row (CSV: its line, the header being line 1;
Parquet: its row, from 1) and the column. Parquet is read with pyarrow.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from congruence.indexer.corpus import Corpus, Post, RowError, RowInvalid, parse_account, parse_post
from congruence.indexer.formats.cells import convert, has_bad_utf8
from congruence.indexer.formats.common import KnownAccounts, Sourced, SourceOptions, assemble

POST_FIELDS = ("id", "account_id", "image", "caption", "likes", "comments", "ts", "sponsored", "tagged")
ACCOUNT_FIELDS = ("id", "kind", "handle", "category", "followers", "followers_at")
REQUIRED = {"posts": ("id", "account_id"), "accounts": ("id",)}
SUFFIXES = (".csv", ".parquet")
_FIELD = re.compile(r"field '(\w+)'")


@dataclass(frozen=True)
class ColumnMap:
    """Our field -> the table's column, per table (unmapped fields keep their own name)."""

    posts: Mapping[str, str] = field(default_factory=dict)
    accounts: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: Sequence[str]) -> ColumnMap:
        """``field=column`` items (``posts.field=`` or ``accounts.field=`` for one table only)."""
        posts: dict[str, str] = {}
        accounts: dict[str, str] = {}
        for item in items:
            key, sep, column = item.partition("=")
            table, dot, name = key.strip().rpartition(".")
            column = column.strip()
            if not sep or not name or not column or (dot and table not in ("posts", "accounts")):
                raise ValueError(
                    f"--map: expected field=column (or posts.field=column, accounts.field=column), got {item!r}"
                )
            targets = [
                (t, d)
                for t, fields, d in (("posts", POST_FIELDS, posts), ("accounts", ACCOUNT_FIELDS, accounts))
                if (not dot or table == t) and name in fields
            ]
            if not targets:
                raise ValueError(
                    f"--map: unknown field {name!r}: posts have {', '.join(POST_FIELDS)}; "
                    f"accounts have {', '.join(ACCOUNT_FIELDS)}"
                )
            if len(targets) > 1:
                raise ValueError(
                    f"--map: both tables have {name!r}: write posts.{name}={column} or accounts.{name}={column}"
                )
            for _, d in targets:
                d[name] = column
        return cls(posts, accounts)

    def column(self, table: str, name: str) -> str:
        return (self.posts if table == "posts" else self.accounts).get(name, name)


Row = tuple[int, dict[str, Any]]


def _csv_rows(path: Path) -> Iterator[Row | RowError]:
    """(line where the record starts, {column: text}) per record; the header is line 1."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield RowError(path.name, start, f"unreadable CSV record: {e}")
                start = reader.line_num + 1
                continue
            if any(c.strip() for c in cells):
                if len(cells) > len(header):
                    yield RowError(path.name, start, f"{len(cells)} cells but {len(header)} columns in the header")
                else:
                    yield start, dict(zip(header, cells, strict=False))
            start = reader.line_num + 1


def _parquet_rows(path: Path) -> Iterator[Row | RowError]:
    """(row from 1, {column: value}) per row, read a batch at a time."""
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def table_columns(path: Path) -> list[str]:
    if path.suffix.lower() == ".parquet":
        return list(pq.read_schema(path).names)
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        return next(csv.reader(f), [])


def _rows(path: Path) -> Iterator[Row | RowError]:
    return _parquet_rows(path) if path.suffix.lower() == ".parquet" else _csv_rows(path)


def _check_table(path: Path, table: str, cmap: ColumnMap) -> None:
    """FileNotFoundError or ValueError before any row is read: a missing file, an unknown
    suffix, a required or mapped column that is not there."""
    if not path.is_file():
        raise FileNotFoundError(f"{table} table not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path.name}: expected a .csv or .parquet file")
    try:
        columns = table_columns(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path.name}: cannot be read as {path.suffix.lstrip('.').upper()}: {e}") from None
    mapped = cmap.posts if table == "posts" else cmap.accounts
    wanted = {cmap.column(table, f): f for f in REQUIRED[table]} | {c: f for f, c in mapped.items()}
    missing = [f"{c!r}" + (f" (for {f})" if c != f else "") for c, f in wanted.items() if c not in columns]
    if missing:
        raise ValueError(f"{path.name} has no column {', '.join(missing)}; its columns: {', '.join(columns[:30])}")


def _as_fields(cells: dict[str, Any], table: str, cmap: ColumnMap, fields: Sequence[str]) -> dict[str, Any]:
    """The row in our field names, converted; other non-empty columns follow as extra fields."""
    for col, v in cells.items():
        if has_bad_utf8(v):
            raise RowInvalid(f"column {col!r}: not valid UTF-8")
    out: dict[str, Any] = {}
    used = set()
    for f in fields:
        col = cmap.column(table, f)
        if col in cells:
            used.add(col)
            out[f] = convert(f, cells[col])
    if table == "posts" and out.get("sponsored") is None:  # an empty cell or no such column: unknown
        out["sponsored"], out["sponsored_unknown"] = False, True
    for col, v in cells.items():
        if col not in used and col not in out and v not in (None, "") and str(col).strip():
            out[str(col)] = v
    return out


def _reason(e: RowInvalid, table: str, cmap: ColumnMap) -> str:
    """The check's message with our field names as the table's columns."""

    def column(m: re.Match[str]) -> str:
        col = cmap.column(table, m[1])
        return f"column {col!r}" + (f" ({m[1]})" if col != m[1] else "")

    return _FIELD.sub(column, str(e))


def _read(
    path: Path,
    table: str,
    cmap: ColumnMap,
    fields: Sequence[str],
    parse: Callable[[dict[str, Any]], Any],
    errors: list[RowError],
) -> list[tuple[int, Any]]:
    out = []
    for item in _rows(path):
        if isinstance(item, RowError):
            errors.append(item)
            continue
        n, cells = item
        try:
            out.append((n, parse(_as_fields(cells, table, cmap, fields))))
        except RowInvalid as e:
            errors.append(RowError(path.name, n, _reason(e, table, cmap)))
    return out


def read_tables(
    posts: Path,
    accounts: Path | None = None,
    known: KnownAccounts = lambda _id: None,
    cmap: ColumnMap = ColumnMap(),
    options: SourceOptions = SourceOptions(),
) -> Corpus:
    """Read and check a posts table and (optionally) an accounts table; see the module doc.

    Raises FileNotFoundError or ValueError (before reading rows) when a table is missing, is
    not CSV or Parquet, or lacks a required or mapped column.
    """
    posts = Path(posts)
    _check_table(posts, "posts", cmap)
    if accounts is not None:
        _check_table(Path(accounts), "accounts", cmap)
    root = posts.parent
    errors: list[RowError] = []
    account_rows: list[Sourced] = []
    if accounts is not None:

        def account(row: dict[str, Any]) -> Any:
            return parse_account({"kind": "influencer", **{k: v for k, v in row.items() if v is not None}})

        for n, a in _read(Path(accounts), "accounts", cmap, ACCOUNT_FIELDS, account, errors):
            account_rows.append(Sourced(a, Path(accounts).name, n))
    post_rows = _read(posts, "posts", cmap, POST_FIELDS, lambda r: parse_post(r, root), errors)
    read: list[Post] = [replace(p, line=n, source=posts.name) for n, p in post_rows]
    return assemble(root, account_rows, read, options, known, errors)
