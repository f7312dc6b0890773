"""Fuzz the corpus reader (hypothesis): any bytes in any file give rows or per-row errors, never a crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from congruence.indexer.corpus import read_corpus

FIELDS = [
    "id",
    "kind",
    "handle",
    "category",
    "followers",
    "account_id",
    "image",
    "caption",
    "likes",
    "comments",
    "ts",
    "sponsored",
    "tagged",
    "brand_id",
    "influencer_id",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
rows = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8)
paths = st.sampled_from(
    [
        "images/a.jpg",
        "../../etc/passwd",
        "/etc/passwd",
        "images/../../x.jpg",
        "images/link.jpg",
        "images/\x00.jpg",
        "images/missing.jpg",
        "",
        "images",
    ]
)
lines = st.one_of(
    rows.map(lambda r: json.dumps(r).encode()),
    st.builds(lambda r, p: json.dumps({**r, "image": p}).encode(), rows, paths),
    st.binary(max_size=200),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    files=st.fixed_dictionaries(
        {name: st.lists(lines, max_size=6) for name in ("accounts.jsonl", "posts.jsonl", "matches.jsonl")}
    )
)
def test_reader_never_crashes(files: dict[str, list[bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "images" / "a.jpg").write_bytes(b"\xff\xd8not really a jpeg")
        (root / "images" / "link.jpg").symlink_to("/etc/passwd")
        for name, content in files.items():
            (root / name).write_bytes(b"\n".join(content))
        corpus = read_corpus(root)
        n_lines = sum(len(c) for c in files.values())
        assert len(corpus.accounts) + len(corpus.posts) + len(corpus.matches) + len(corpus.errors) <= n_lines + 1
        for post in corpus.posts:  # nothing outside the corpus folder is ever read
            if post.image:
                assert (root / post.image).resolve().is_relative_to(root.resolve())
        for e in corpus.errors:
            assert e.file in files and e.reason
