"""Writing a corpus folder: the inverse of ``corpus.read_corpus``.

``read_corpus(write_corpus(c)) == c`` for every corpus ``c`` whose rows the reader accepts
(images inside ``c.root``, no NUL characters, a caption or an image on every post). The
one JSONL writer: the demo, the benchmarks' corpora and the tests all write through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from congruence.indexer.corpus import Corpus, Post
from congruence.store.rows import Account, Match

Timestamps = Literal["iso", "epoch"]


def account_row(a: Account) -> dict[str, Any]:
    """The JSON object ``parse_account`` reads back as ``a``; extra fields follow the known ones."""
    row: dict[str, Any] = {
        "id": a.id,
        "kind": a.kind,
        "handle": a.handle,
        "category": a.category,
        "followers": a.followers,
    }
    return row | {k: v for k, v in a.extra.items() if k not in row}


def _ts(ts: datetime | None, timestamps: Timestamps) -> str | int | float | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)  # what the reader assumes of a naive time
    if timestamps == "epoch":
        seconds = ts.timestamp()
        return int(seconds) if seconds == int(seconds) else seconds
    return ts.isoformat().replace("+00:00", "Z")


def image_field(image: Path | None, root: Path) -> str | None:
    """``image`` as the reader wants it: a POSIX path relative to ``root``, or None."""
    if image is None:
        return None
    try:
        return image.relative_to(root).as_posix()
    except ValueError:
        raise ValueError(f"image {str(image)!r} is not inside the corpus folder {str(root)!r}") from None


def post_row(p: Post, root: Path, timestamps: Timestamps = "iso") -> dict[str, Any]:
    """The JSON object ``parse_post`` reads back as ``p`` (``p.image`` must lie under ``root``)."""
    row: dict[str, Any] = {
        "id": p.id,
        "account_id": p.account_id,
        "image": image_field(p.image, root),
        "caption": p.caption,
        "likes": p.likes,
        "comments": p.comments,
        "ts": _ts(p.ts, timestamps),
        "sponsored": p.sponsored,
        "tagged": list(p.tagged),
    }
    return row | {k: v for k, v in p.extra.items() if k not in row}


def match_row(m: Match) -> dict[str, Any]:
    return {"brand_id": m.brand_id, "influencer_id": m.influencer_id}


# characters JSON leaves unescaped at which str.splitlines() in other tools would cut a row
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object a line, UTF-8 (\\u-escaped: only the line breaks of ``_LINE_BREAKS``), in order."""
    with path.open("w", encoding="utf-8") as f:
        f.writelines(map(_line, rows))


def write_corpus(corpus: Corpus, timestamps: Timestamps = "iso") -> Path:
    """Write ``corpus`` to ``corpus.root`` (created): accounts.jsonl, posts.jsonl, and
    matches.jsonl; returns the folder. Images are not copied: each post's ``image`` must
    already be a file under ``corpus.root``. ``timestamps``: ISO 8601 (UTC as ``Z``) or
    epoch seconds; the reader takes either. ``corpus.errors`` is not written.
    """
    root = corpus.root
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "accounts.jsonl", map(account_row, corpus.accounts))
    write_jsonl(root / "posts.jsonl", (post_row(p, root, timestamps) for p in corpus.posts))
    write_jsonl(root / "matches.jsonl", map(match_row, corpus.matches))
    return root
