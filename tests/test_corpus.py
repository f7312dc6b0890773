"""The corpus reader: every bad row becomes exactly one RowError; good rows still come through.

Each case writes a tiny real corpus folder (JSONL files and small JPEGs) under tmp_path and
asserts the exact (file, line, reason) the reader reports.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from congruence.indexer.corpus import (
    MAX_LINE_BYTES,
    RowError,
    RowInvalid,
    iter_jsonl,
    parse_post,
    read_corpus,
    resolve_image,
)
from congruence.store.rows import Match

ACCOUNTS = [
    {"id": "b1", "kind": "brand", "handle": "Brand One", "category": "Fashion", "followers": 50_000, "country": "FR"},
    {"id": "i1", "kind": "influencer", "category": "FOOD", "followers": 12_000.0},
    {"id": "i2", "kind": "influencer", "handle": " i_two ", "category": "food"},
]
POSTS = [
    {
        "id": "p1",
        "account_id": "b1",
        "image": "img/p1.jpg",
        "caption": "hello",
        "likes": 10,
        "comments": 2,
        "sponsored": True,
        "tagged": ["i1"],
        "ts": "2024-01-02T03:04:05Z",
        "mood": "happy",
    },
    {"id": "p2", "account_id": "i1", "image": "img/sub/p2.jpg", "caption": ""},
    {"id": "p3", "account_id": "i2", "image": None, "caption": "text only", "ts": 0, "tagged": "b1"},
]
MATCHES = [{"brand_id": "b1", "influencer_id": "i1"}]
GOOD_IDS = (["b1", "i1", "i2"], ["p1", "p2", "p3"], [Match("b1", "i1")])


def jpeg(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), color).save(path, format="JPEG")


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def write(path: Path, rows: list[object]) -> None:
    path.write_bytes(b"".join(r if isinstance(r, bytes) else line(r) for r in rows))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An image that exists, but outside the corpus folder."""
    p = tmp_path / "outside" / "secret.jpg"
    jpeg(p)
    return p


@pytest.fixture
def corpus(tmp_path: Path, outside: Path) -> Path:
    root = tmp_path / "corpus"
    jpeg(root / "img" / "p1.jpg")
    jpeg(root / "img" / "sub" / "p2.jpg", (10, 200, 10))
    (root / "img" / "link.jpg").symlink_to(outside)
    (root / "img" / "inner_link.jpg").symlink_to("p1.jpg")
    write(root / "accounts.jsonl", ACCOUNTS)
    write(root / "posts.jsonl", POSTS)
    write(root / "matches.jsonl", MATCHES)
    return root


def ids(c: object) -> tuple[list[str], list[str], list[Match]]:
    return [a.id for a in c.accounts], [p.id for p in c.posts], c.matches  # type: ignore[attr-defined]


def insert(root: Path, file: str, raw: bytes, at: int = 2) -> None:
    """Put ``raw`` as line ``at`` of ``file``, the good lines around it."""
    lines = (root / file).read_bytes().splitlines(keepends=True)
    lines.insert(at - 1, raw if raw.endswith(b"\n") else raw + b"\n")
    (root / file).write_bytes(b"".join(lines))


# -- a good corpus ---------------------------------------------------------------------------------


def test_good_corpus_reads_fully(corpus: Path) -> None:
    c = read_corpus(corpus)
    assert c.errors == []
    assert c.root == corpus.resolve()
    assert ids(c) == GOOD_IDS
    b1, i1, i2 = c.accounts
    assert (b1.kind, b1.handle, b1.category, b1.followers, b1.extra) == (
        "brand",
        "Brand One",
        "fashion",
        50_000,
        {"country": "FR"},
    )
    assert (i1.handle, i1.category, i1.followers) == ("i1", "food", 12_000)  # handle defaults to the id
    assert isinstance(i1.followers, int)
    assert (i2.handle, i2.followers) == ("i_two", None)
    p1, p2, p3 = c.posts
    assert p1.image == (corpus / "img" / "p1.jpg").resolve() and p1.image.is_absolute()
    assert p2.image == (corpus / "img" / "sub" / "p2.jpg").resolve()
    assert p3.image is None
    assert (p1.caption, p1.likes, p1.comments, p1.sponsored, p1.tagged, p1.extra) == (
        "hello",
        10,
        2,
        True,
        ("i1",),
        {"mood": "happy"},
    )
    assert p1.ts == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (p2.caption, p2.likes, p2.sponsored, p2.tagged, p2.ts) == ("", None, False, (), None)
    assert p3.ts == datetime(1970, 1, 1, tzinfo=UTC) and p3.tagged == ("b1",)
    assert [p.line for p in c.posts] == [1, 2, 3]


def test_symlink_inside_the_folder_is_accepted(corpus: Path) -> None:
    insert(corpus, "posts.jsonl", line({"id": "p4", "account_id": "i2", "image": "img/inner_link.jpg"}), at=4)
    c = read_corpus(corpus)
    assert c.errors == []
    assert c.posts[-1].image == (corpus / "img" / "p1.jpg").resolve()


def test_blank_lines_and_crlf_are_fine(corpus: Path) -> None:
    rows = (corpus / "accounts.jsonl").read_bytes().splitlines()
    (corpus / "accounts.jsonl").write_bytes(b"\n   \n" + b"\r\n".join(rows) + b"\r\n\n")
    c = read_corpus(corpus)
    assert c.errors == [] and ids(c) == GOOD_IDS


def test_duplicate_matches_are_kept_once(corpus: Path) -> None:
    insert(corpus, "matches.jsonl", line(MATCHES[0]))
    c = read_corpus(corpus)
    assert c.errors == [] and c.matches == [Match("b1", "i1")]


# -- one bad row, one RowError -----------------------------------------------------------------------


def long_line() -> bytes:
    pad = "a" * MAX_LINE_BYTES
    return line({"id": "big", "kind": "brand", "pad": pad})


BAD_ROWS = [
    # (case id, file, raw line inserted as line 2, exact reason[, xfail mark])
    ("malformed-json", "accounts.jsonl", b'{"id": "b9", "kind": }', "malformed JSON: Expecting value at column 22"),
    ("truncated-json", "posts.jsonl", b'{"id": "p9"', "malformed JSON: Expecting ',' delimiter at column 12"),
    ("not-utf8", "accounts.jsonl", b'{"id":"\xff", "kind": "brand"}', "not valid UTF-8 (byte 7)"),
    ("json-list", "accounts.jsonl", b'["b9", "brand"]', "expected a JSON object, got list"),
    ("json-string", "posts.jsonl", b'"p9"', "expected a JSON object, got str"),
    ("json-null", "matches.jsonl", b"null", "expected a JSON object, got NoneType"),
    ("account-missing-id", "accounts.jsonl", line({"kind": "brand"}), "missing field 'id'"),
    ("account-missing-kind", "accounts.jsonl", line({"id": "b9"}), "missing field 'kind'"),
    ("post-missing-id", "posts.jsonl", line({"account_id": "b1", "caption": "x"}), "missing field 'id'"),
    ("empty-id", "accounts.jsonl", line({"id": "  ", "kind": "brand"}), "field 'id' is empty"),
    ("id-not-string", "accounts.jsonl", line({"id": 9, "kind": "brand"}), "field 'id' must be a string, got int"),
    (
        "nul-in-caption",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "caption": "a\x00b"}),
        "field 'caption' contains a NUL character",
    ),
    (
        "followers-string",
        "accounts.jsonl",
        line({"id": "i9", "kind": "influencer", "followers": "12k"}),
        "field 'followers' must be a number, got str",
    ),
    (
        "followers-bool",
        "accounts.jsonl",
        line({"id": "i9", "kind": "influencer", "followers": True}),
        "field 'followers' must be a number, got bool",
    ),
    # (a negative count is a scraper's "hidden": unknown, not an error; test_formats_table checks it)
    (
        "followers-huge",
        "accounts.jsonl",
        line({"id": "i9", "kind": "influencer", "followers": 10**13}),
        "field 'followers' out of range: 10000000000000",
    ),
    (
        "likes-float",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "caption": "x", "likes": 1.5}),
        "field 'likes' must be a whole number, got 1.5",
    ),
    (
        "likes-nan",
        "posts.jsonl",
        b'{"id": "p9", "account_id": "b1", "caption": "x", "likes": NaN}',
        "field 'likes' must be a whole number, got nan",
    ),
    (
        "sponsored-yes",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "caption": "x", "sponsored": "yes"}),
        "field 'sponsored' must be true or false, got str",
    ),
    (
        "tagged-numbers",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "caption": "x", "tagged": [1]}),
        "field 'tagged' must be a list of account ids",
    ),
    (
        "bad-ts",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "caption": "x", "ts": "yesterday"}),
        "field 'ts' is not a timestamp (ISO 8601 or epoch seconds): 'yesterday'",
    ),
    (
        "kind-agency",
        "accounts.jsonl",
        line({"id": "x9", "kind": "agency"}),
        "field 'kind' must be brand or influencer, got 'agency'",
    ),
    (
        "duplicate-account",
        "accounts.jsonl",
        line({"id": "b1", "kind": "influencer"}),
        "duplicate id 'b1' (first on line 1)",
    ),
    (
        "duplicate-post",
        "posts.jsonl",
        line({"id": "p1", "account_id": "i2", "caption": "again"}),
        "duplicate id 'p1' (first on line 1)",
    ),
    (
        "unknown-account",
        "posts.jsonl",
        line({"id": "p9", "account_id": "zzz", "caption": "x"}),
        "unknown account_id 'zzz'",
    ),
    (
        "image-escapes",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": "../../etc/passwd"}),
        "image path escapes the corpus folder: '../../etc/passwd'",
    ),
    (
        "image-escapes-via-subdir",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": "img/../../x.jpg"}),
        "image path escapes the corpus folder: 'img/../../x.jpg'",
    ),
    (
        "image-absolute",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": "/etc/passwd"}),
        "image path must be relative to the corpus folder: '/etc/passwd'",
    ),
    (
        "image-symlink-outside",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": "img/link.jpg"}),
        "image path escapes the corpus folder: 'img/link.jpg'",
    ),
    (
        "image-missing",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": "img/missing.jpg"}),
        "image file not found: 'img/missing.jpg'",
    ),
    (
        "image-is-a-folder",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": "img/sub"}),
        "image file not found: 'img/sub'",
    ),
    (
        "image-empty",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": " "}),
        "field 'image' is empty (use null for a text-only post)",
    ),
    (
        "image-number",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": 3}),
        "field 'image' must be a path or null, got int",
    ),
    (
        "no-image-no-caption",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1", "image": None, "caption": "  "}),
        "post has neither an image nor a caption",
    ),
    (
        "no-image-key-no-caption",
        "posts.jsonl",
        line({"id": "p9", "account_id": "b1"}),
        "post has neither an image nor a caption",
    ),
    (
        "match-brand-is-influencer",
        "matches.jsonl",
        line({"brand_id": "i1", "influencer_id": "i2"}),
        "brand_id 'i1' is not a known brand",
    ),
    (
        "match-influencer-is-brand",
        "matches.jsonl",
        line({"brand_id": "b1", "influencer_id": "b1"}),
        "influencer_id 'b1' is not a known influencer",
    ),
    (
        "match-unknown",
        "matches.jsonl",
        line({"brand_id": "nobody", "influencer_id": "i1"}),
        "brand_id 'nobody' is not a known brand",
    ),
    ("deeply-nested", "accounts.jsonl", b"[" * 100_000, "malformed JSON: nested too deeply"),
    ("deeply-nested-object", "posts.jsonl", b'{"a":' * 100_000, "malformed JSON: nested too deeply"),
    ("line-over-1-MiB", "accounts.jsonl", long_line(), f"line longer than {MAX_LINE_BYTES} bytes"),
]


def _case(c: tuple) -> object:
    """(case id, file, raw, reason[, mark]) as a pytest param."""
    return pytest.param(*c[1:4], id=c[0], marks=c[4:])


@pytest.mark.parametrize("file, raw, reason", [_case(c) for c in BAD_ROWS])
def test_bad_row_gives_one_error_and_good_rows_survive(corpus: Path, file: str, raw: bytes, reason: str) -> None:
    insert(corpus, file, raw, at=2)
    c = read_corpus(corpus)
    assert c.errors == [RowError(file, 2, reason)]
    assert str(c.errors[0]) == f"{file}:2: {reason}"
    assert ids(c) == GOOD_IDS
    if file == "posts.jsonl":  # lines after the bad one keep their own numbers
        assert [p.line for p in c.posts] == [1, 3, 4]


def test_errors_are_sorted_by_file_and_line(corpus: Path) -> None:
    insert(corpus, "posts.jsonl", line({"id": "p1", "account_id": "b1", "caption": "dup"}), at=4)
    insert(corpus, "posts.jsonl", line({"id": "p9", "account_id": "zzz", "caption": "x"}), at=2)
    insert(corpus, "accounts.jsonl", b"{", at=4)
    insert(corpus, "accounts.jsonl", line({"id": "b1", "kind": "brand"}), at=2)
    c = read_corpus(corpus)
    assert [(e.file, e.line) for e in c.errors] == [
        ("accounts.jsonl", 2),
        ("accounts.jsonl", 5),
        ("posts.jsonl", 2),
        ("posts.jsonl", 5),
    ]
    assert c.errors[3].reason == "duplicate id 'p1' (first on line 1)"
    assert ids(c) == GOOD_IDS


def test_post_of_an_invalid_account_is_unknown(corpus: Path) -> None:
    insert(corpus, "accounts.jsonl", line({"id": "x9", "kind": "agency"}), at=4)
    insert(corpus, "posts.jsonl", line({"id": "p9", "account_id": "x9", "caption": "x"}), at=4)
    c = read_corpus(corpus)
    assert c.errors == [
        RowError("accounts.jsonl", 4, "field 'kind' must be brand or influencer, got 'agency'"),
        RowError("posts.jsonl", 4, "unknown account_id 'x9'"),
    ]


def test_known_accounts_callback(corpus: Path) -> None:
    in_store = {"s_brand": "brand", "s_inf": "influencer"}
    insert(corpus, "posts.jsonl", line({"id": "p9", "account_id": "s_inf", "caption": "from the store"}), at=4)
    insert(corpus, "matches.jsonl", line({"brand_id": "s_brand", "influencer_id": "i2"}), at=2)
    insert(corpus, "matches.jsonl", line({"brand_id": "b1", "influencer_id": "s_inf"}), at=3)
    asked: list[str] = []

    def known(acc_id: str) -> str | None:
        asked.append(acc_id)
        return in_store.get(acc_id)

    c = read_corpus(corpus, known_accounts=known)
    assert c.errors == []
    assert [p.id for p in c.posts] == ["p1", "p2", "p3", "p9"]
    assert c.matches == [Match("b1", "i1"), Match("s_brand", "i2"), Match("b1", "s_inf")]
    assert "b1" not in asked  # the folder's own accounts are not looked up
    # without the callback the same rows are refused
    c = read_corpus(corpus)
    assert c.errors == [
        RowError("matches.jsonl", 2, "brand_id 's_brand' is not a known brand"),
        RowError("matches.jsonl", 3, "influencer_id 's_inf' is not a known influencer"),
        RowError("posts.jsonl", 4, "unknown account_id 's_inf'"),
    ]


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"corpus folder not found: {tmp_path / 'nope'}")):
        read_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{tmp_path / 'empty'} has neither accounts.jsonl nor posts.jsonl")
    ):
        read_corpus(tmp_path / "empty")


def test_posts_only_folder_with_known_accounts(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    write(root / "posts.jsonl", [{"id": "p1", "account_id": "s1", "caption": "x"}])
    c = read_corpus(root, known_accounts=lambda i: "influencer" if i == "s1" else None)
    assert c.errors == [] and c.accounts == [] and [p.id for p in c.posts] == ["p1"] and c.matches == []


# -- the pieces -------------------------------------------------------------------------------------------


def test_iter_jsonl_yields_objects_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n\n[1]\n{"b": 2}')  # no trailing newline on the last line
    assert list(iter_jsonl(p)) == [
        (1, {"a": 1}),
        (3, RowError("x.jsonl", 3, "expected a JSON object, got list")),
        (4, {"b": 2}),
    ]


def test_line_of_exactly_the_limit_plus_one_is_refused_either_way(tmp_path: Path) -> None:
    obj = b'{"pad": "' + b"a" * (MAX_LINE_BYTES + 1 - len(b'{"pad": ""}')) + b'"}'
    assert len(obj) == MAX_LINE_BYTES + 1
    p = tmp_path / "x.jsonl"
    for tail in (b"\n", b""):
        p.write_bytes(obj + tail)
        assert [e for _, e in iter_jsonl(p)] == [RowError("x.jsonl", 1, f"line longer than {MAX_LINE_BYTES} bytes")]


def test_line_of_exactly_the_limit_is_accepted_either_way(tmp_path: Path) -> None:
    obj = b'{"pad": "' + b"a" * (MAX_LINE_BYTES - len(b'{"pad": ""}')) + b'"}'
    assert len(obj) == MAX_LINE_BYTES
    p = tmp_path / "x.jsonl"
    for tail in (b"", b"\n"):
        p.write_bytes(obj + tail)
        assert [type(o) for _, o in iter_jsonl(p)] == [dict], f"refused with tail {tail!r}"


def test_resolve_image(corpus: Path, outside: Path) -> None:
    assert resolve_image(corpus, "img/p1.jpg") == (corpus / "img" / "p1.jpg").resolve()
    assert resolve_image(corpus, "./img/../img/p1.jpg") == (corpus / "img" / "p1.jpg").resolve()
    with pytest.raises(
        RowInvalid, match=re.escape(f"image path must be relative to the corpus folder: {str(outside)!r}")
    ):
        resolve_image(corpus, str(outside))
    # an absolute path is refused even when it points inside the folder
    with pytest.raises(RowInvalid, match="must be relative"):
        resolve_image(corpus, str(corpus / "img" / "p1.jpg"))
    with pytest.raises(RowInvalid, match=re.escape("image path escapes the corpus folder: '..'")):
        resolve_image(corpus, "..")


# Rows whose image path makes the filesystem itself fail: each should still be one RowError.
CRASHING_IMAGES = [
    ("nul-byte", "img/p1\x00.jpg", ValueError, "ValueError: embedded null byte from Path.resolve()"),
    (
        "name-too-long",
        "a" * 5000,
        OSError,
        "OSError ENAMETOOLONG from Path.is_file() (not in pathlib's ignored errnos)",
    ),
    ("symlink-loop", "img/loop_a", RuntimeError, "RuntimeError('Symlink loop ...') from Path.resolve() on Python 3.11"),
]


@pytest.mark.parametrize("rel", [pytest.param(rel, id=cid) for cid, rel, _exc, _why in CRASHING_IMAGES])
def test_unresolvable_image_path_is_one_row_error(corpus: Path, rel: str) -> None:
    (corpus / "img" / "loop_a").symlink_to("loop_b")
    (corpus / "img" / "loop_b").symlink_to("loop_a")
    insert(corpus, "posts.jsonl", line({"id": "p9", "account_id": "b1", "image": rel}), at=2)
    c = read_corpus(corpus)
    assert [(e.file, e.line) for e in c.errors] == [("posts.jsonl", 2)]
    assert ids(c) == GOOD_IDS


def test_a_post_without_sponsorship_is_not_known_to_be_organic(tmp_path: Path) -> None:
    silent = parse_post({"id": "p1", "account_id": "a", "caption": "x"}, tmp_path)
    null = parse_post({"id": "p2", "account_id": "a", "caption": "x", "sponsored": None}, tmp_path)
    said = parse_post({"id": "p3", "account_id": "a", "caption": "x", "sponsored": False}, tmp_path)
    assert silent.extra["sponsored_unknown"] is True and null.extra["sponsored_unknown"] is True
    assert "sponsored_unknown" not in said.extra and not said.sponsored
