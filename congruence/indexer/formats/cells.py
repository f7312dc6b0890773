"""One table cell to the value the JSONL reader expects, by field.

CSV cells are strings and Parquet cells are typed (int64, double with NaN for a missing
number, timestamp, bool, list<string>); both become what ``corpus.parse_post`` and
``parse_account`` check, so a table row is held to the JSONL rules. An empty cell is null.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any

from congruence.indexer.corpus import RowInvalid

COUNTS = ("likes", "comments", "followers")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?\d+\.\d*(?:[eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_SPLIT = re.compile(r"[\s,;|]+")


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def count(v: object, field: str = "likes") -> object:
    """A whole number, null, or the value unchanged for ``parse_post`` to refuse with its reason."""
    if _blank(v):
        return None
    if isinstance(v, str):
        s = v.strip().replace("_", "")
        if _INT.fullmatch(s):
            return int(s)
        if _FLOAT.fullmatch(s):
            return float(s)
        raise RowInvalid(f"field '{field}' must be a whole number, got {v[:40]!r}")
    return v


def flag(v: object, field: str = "sponsored") -> bool | None:
    """true/false (also t/f, yes/no, y/n, 1/0, any case); None when empty (unknown)."""
    if _blank(v):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower()
    if s in _TRUE or s in _FALSE:
        return s in _TRUE
    raise RowInvalid(f"field '{field}' must be true or false, got {str(v)[:40]!r}")


def timestamp(v: object) -> object:
    """ISO 8601 text or epoch seconds as they are; a Parquet timestamp (naive = UTC) or date as ISO."""
    if _blank(v):
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC).isoformat()
    if isinstance(v, str) and _INT.fullmatch(v.strip()):
        return int(v.strip())
    return v.strip() if isinstance(v, str) else v


def names(v: object, field: str = "tagged") -> list[str] | object:
    """Account names: a list, a JSON list, or text separated by commas, semicolons, '|' or
    spaces; a leading '@' is dropped."""
    if _blank(v):
        return []
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                v = json.loads(s)
            except ValueError:
                raise RowInvalid(f"field '{field}' is not a JSON list: {s[:40]!r}") from None
        else:
            v = [p for p in _SPLIT.split(s) if p]
    if isinstance(v, (list, tuple)) and all(isinstance(t, str) for t in v):
        return [t.strip().lstrip("@") for t in v if t.strip()]
    return v


def text(v: object) -> object:
    """Text cells; a number (a numeric id column) as its digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v


def convert(field: str, v: object) -> Any:
    """The value of ``field`` for the JSONL reader (RowInvalid names the field, as ``parse_post`` does)."""
    if field != "caption" and field != "sponsored" and _blank(v):
        return None
    if field in COUNTS:
        return count(v, field)
    if field == "sponsored":
        return flag(v, field)
    if field in ("ts", "followers_at"):
        return timestamp(v)
    if field == "tagged":
        return names(v, field)
    if field == "image":
        return None if _blank(v) else text(v)
    return text(v)


def has_bad_utf8(v: object) -> bool:
    """A CSV cell decoded with surrogateescape holds lone surrogates where the bytes were not UTF-8."""
    return isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v)
