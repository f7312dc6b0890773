"""Reading a corpus folder: accounts.jsonl, posts.jsonl, matches.jsonl.

Every row is checked here, once. A bad row becomes a ``RowError`` naming the file, the
line and the reason; good rows become frozen dataclasses. Nothing here touches the store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from congruence.store.rows import Account, Match

MAX_LINE_BYTES = 1 << 20
KINDS = ("brand", "influencer")


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:  # line 0: a file that is one row (an Instaloader .json.xz), or no line known
        return f"{self.file}:{self.line}: {self.reason}" if self.line else f"{self.file}: {self.reason}"


@dataclass(frozen=True)
class Post:
    """A post; ``image`` is the resolved absolute path inside the corpus, or None. ``source``
    and ``line``: where the row was read (the file inside the corpus and its line or row
    number, 0 when the file is the row), for the errors of later checks."""

    id: str
    account_id: str
    image: Path | None
    caption: str
    likes: int | None = None
    comments: int | None = None
    ts: datetime | None = None
    sponsored: bool = False
    tagged: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    line: int = field(default=0, compare=False)
    source: str = field(default="posts.jsonl", compare=False)


@dataclass(frozen=True)
class Corpus:
    root: Path
    accounts: list[Account]
    posts: list[Post]
    matches: list[Match]
    errors: list[RowError] = field(default_factory=list)


# read(folder, known_accounts) -> Corpus: ``read_corpus`` and the readers of indexer/formats
CorpusReader = Callable[[Path, Callable[[str], str | None]], Corpus]


class RowInvalid(ValueError):
    """One row's problem; becomes a RowError with the file and line added."""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, object or error) for every non-blank line of ``path``."""
    name = path.name
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\r\n")
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # editors on Windows add a BOM
            if len(raw) > MAX_LINE_BYTES:
                yield lineno, RowError(name, lineno, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, RowError(name, lineno, f"not valid UTF-8 (byte {e.start})")
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except RecursionError:
                yield lineno, RowError(name, lineno, "malformed JSON: nested too deeply")
                continue
            except json.JSONDecodeError as e:
                yield lineno, RowError(name, lineno, f"malformed JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(obj, dict):
                yield lineno, RowError(name, lineno, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, obj


def _str(row: dict[str, Any], key: str, *, required: bool = True, empty_ok: bool = False) -> str:
    v = row.get(key)
    if v is None:
        if required:
            raise RowInvalid(f"missing field '{key}'")
        return ""
    if not isinstance(v, str):
        raise RowInvalid(f"field '{key}' must be a string, got {type(v).__name__}")
    if "\x00" in v:
        raise RowInvalid(f"field '{key}' contains a NUL character")
    v = v.strip() if key != "caption" else v
    if not v and required and not empty_ok:
        raise RowInvalid(f"field '{key}' is empty")
    return v


def _count(row: dict[str, Any], key: str) -> int | None:
    v = row.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RowInvalid(f"field '{key}' must be a number, got {type(v).__name__}")
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        raise RowInvalid(f"field '{key}' must be a whole number, got {v}")
    if v < 0 or v > 10**12:
        raise RowInvalid(f"field '{key}' out of range: {v}")
    return int(v)


def _ts(row: dict[str, Any], key: str = "ts") -> datetime | None:
    v = row.get(key)
    if v is None or v == "":
        return None
    try:
        if isinstance(v, bool):
            raise TypeError
        if isinstance(v, (int, float)):
            return datetime.fromtimestamp(float(v), tz=UTC)
        if isinstance(v, str):
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    raise RowInvalid(f"field '{key}' is not a timestamp (ISO 8601 or epoch seconds): {str(v)[:40]!r}")


def resolve_image(root: Path, rel: str) -> Path:
    """The absolute path of ``rel`` inside ``root``; refuses anything that escapes it."""
    if not rel.strip():
        raise RowInvalid("field 'image' is empty (use null for a text-only post)")
    p = Path(rel)
    if p.is_absolute():
        raise RowInvalid(f"image path must be relative to the corpus folder: {rel!r}")
    root_r = root.resolve()
    try:
        full = (root_r / p).resolve()  # resolves symlinks, so a link pointing outside is caught
        if not full.is_relative_to(root_r):
            raise RowInvalid(f"image path escapes the corpus folder: {rel!r}")
        if not full.is_file():
            raise RowInvalid(f"image file not found: {rel!r}")
    except (ValueError, OSError, RuntimeError) as e:  # NUL bytes, names too long, symlink loops
        if isinstance(e, RowInvalid):
            raise
        raise RowInvalid(f"image path cannot be resolved: {rel[:80]!r}") from None
    return full


def parse_account(row: dict[str, Any]) -> Account:
    kind = _str(row, "kind")
    if kind not in KINDS:
        raise RowInvalid(f"field 'kind' must be brand or influencer, got {kind[:40]!r}")
    known = {"id", "kind", "handle", "category", "followers"}
    acc_id = _str(row, "id")
    extra = {k: v for k, v in row.items() if k not in known}
    followers = row.get("followers")
    if isinstance(followers, (int, float)) and not isinstance(followers, bool) and followers < 0:
        # a scraper's "hidden" (-1) or a bad count: unknown, the figure kept for the dirty-value counts
        extra["followers_reported"], followers = followers, None
    extra.pop("followers_at_source", None)  # set by the Instaloader reader alone, after this
    at = _ts(row, "followers_at")  # when the count was seen (store.follower_history); absent: the ingest's time
    if at is not None:
        if at > datetime.now(UTC) + timedelta(days=1):
            raise RowInvalid(f"field 'followers_at' is in the future: {at.isoformat()}")
        extra["followers_at"] = at.isoformat()
    elif "followers_at" in extra:
        del extra["followers_at"]
    return Account(
        id=acc_id,
        kind=kind,
        handle=_str(row, "handle", required=False) or acc_id,
        category=_str(row, "category", required=False).lower(),
        followers=_count({"followers": followers}, "followers"),
        extra=extra,
    )


def parse_post(row: dict[str, Any], root: Path) -> Post:
    image_raw = row.get("image")
    if image_raw is not None and not isinstance(image_raw, str):
        raise RowInvalid(f"field 'image' must be a path or null, got {type(image_raw).__name__}")
    image = resolve_image(root, image_raw) if image_raw is not None else None
    caption = _str(row, "caption", required=False)
    if image is None and not caption.strip():
        raise RowInvalid("post has neither an image nor a caption")
    tagged = row.get("tagged") or []
    if isinstance(tagged, str):
        tagged = [tagged]
    if not isinstance(tagged, list) or not all(isinstance(t, str) for t in tagged):
        raise RowInvalid("field 'tagged' must be a list of account ids")
    sponsored = row.get("sponsored")
    if sponsored is not None and not isinstance(sponsored, bool):
        raise RowInvalid(f"field 'sponsored' must be true or false, got {type(sponsored).__name__}")
    known = {"id", "account_id", "image", "caption", "likes", "comments", "ts", "sponsored", "tagged"}
    extra = {k: v for k, v in row.items() if k not in known}
    if sponsored is None:  # absent or null: not known to be organic
        sponsored, extra["sponsored_unknown"] = False, True
    return Post(
        id=_str(row, "id"),
        account_id=_str(row, "account_id"),
        image=image,
        caption=caption,
        likes=_count(row, "likes"),
        comments=_count(row, "comments"),
        ts=_ts(row),
        sponsored=sponsored,
        tagged=tuple(tagged),
        extra=extra,
    )


def _read(path: Path, parse: Callable[[dict[str, Any]], Any], errors: list[RowError]) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    if not path.exists():
        return out
    for lineno, obj in iter_jsonl(path):
        if isinstance(obj, RowError):
            errors.append(obj)
            continue
        try:
            row = parse(obj)
            if isinstance(row, Post):
                row = replace(row, line=lineno)
            out.append((lineno, row))
        except RowInvalid as e:
            errors.append(RowError(path.name, lineno, str(e)))
    return out


def _dedupe(rows: list[tuple[int, Any]], file: str, errors: list[RowError]) -> list[Any]:
    seen: dict[str, int] = {}
    kept = []
    for lineno, r in rows:
        if r.id in seen:
            errors.append(RowError(file, lineno, f"duplicate id {r.id!r} (first on line {seen[r.id]})"))
            continue
        seen[r.id] = lineno
        kept.append(r)
    return kept


def read_corpus(root: Path, known_accounts: Callable[[str], str | None] = lambda _id: None) -> Corpus:
    """Read and check a corpus folder.

    known_accounts(id) returns the kind ("brand"/"influencer") of an account already in
    the store, or None; posts and matches may refer to those as well as to the folder's.
    Raises FileNotFoundError when the folder or its accounts.jsonl/posts.jsonl is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {root}")
    if not (root / "accounts.jsonl").exists() and not (root / "posts.jsonl").exists():
        raise FileNotFoundError(f"{root} has neither accounts.jsonl nor posts.jsonl")
    errors: list[RowError] = []
    accounts = _dedupe(_read(root / "accounts.jsonl", parse_account, errors), "accounts.jsonl", errors)
    kinds = {a.id: a.kind for a in accounts}

    def kind_of(acc_id: str) -> str | None:
        return kinds.get(acc_id) or known_accounts(acc_id)

    posts_rows = _read(root / "posts.jsonl", lambda r: parse_post(r, root), errors)
    posts_ok = []
    for lineno, p in posts_rows:
        if kind_of(p.account_id) is None:
            errors.append(RowError("posts.jsonl", lineno, f"unknown account_id {p.account_id!r}"))
        else:
            posts_ok.append((lineno, p))
    posts = _dedupe(posts_ok, "posts.jsonl", errors)
    matches = _read_matches(root / "matches.jsonl", kind_of, errors)
    errors.sort(key=lambda e: (e.file, e.line))
    return Corpus(root=root.resolve(), accounts=accounts, posts=posts, matches=matches, errors=errors)


def _read_matches(path: Path, kind_of: Callable[[str], str | None], errors: list[RowError]) -> list[Match]:
    def parse(row: dict[str, Any]) -> Match:
        m = Match(_str(row, "brand_id"), _str(row, "influencer_id"))
        if kind_of(m.brand_id) != "brand":
            raise RowInvalid(f"brand_id {m.brand_id!r} is not a known brand")
        if kind_of(m.influencer_id) != "influencer":
            raise RowInvalid(f"influencer_id {m.influencer_id!r} is not a known influencer")
        return m

    return list(dict.fromkeys(m for _, m in _read(path, parse, errors)))
