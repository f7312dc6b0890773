"""The index build from PostgreSQL: posts quantised in cache-sized blocks, and read + quantised
by a thread ahead of the graph build, with the same result as adding chunk by chunk."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from congruence.indexer import index_sync
from congruence.indexer.index import VectorIndex
from congruence.indexer.index_sync import IndexLayout
from congruence.indexer.post_matrix import BLOCK, PostMatrix, QuantizedPosts, quantize
from congruence.store.vectors import AccountChunk

D = 16


def _reference(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The quantisation formula over the whole array at once (what the blocks must equal)."""
    x = rows.astype(np.float32)
    scales = (np.abs(x).max(axis=1) / 127.0).astype(np.float16)
    safe = np.where(scales > 0, scales.astype(np.float32), 1.0)[:, None]
    return np.clip(np.rint(x / safe), -127, 127).astype(np.int8), scales


def test_blocked_quantisation_equals_the_whole_array_formula() -> None:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2 * BLOCK + 17, D)).astype(np.float16)
    rows[[0, BLOCK, 2 * BLOCK + 3]] = 0  # zero rows, at block edges too
    codes, scales = quantize(rows)
    want_codes, want_scales = _reference(rows)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(scales, want_scales)
    assert quantize(np.zeros((0, D), np.float16))[0].shape == (0, D)


def _chunks(n: int, rng: np.random.Generator, fail_at: int | None = None) -> Iterator[AccountChunk]:
    for i in range(0, n, 7):
        if fail_at is not None and i >= fail_at:
            raise RuntimeError("connection lost")
        seq = np.arange(i, min(i + 7, n))
        vecs = rng.standard_normal((len(seq), D)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        posts: list[np.ndarray | None] = [
            None if s % 5 == 0 else rng.standard_normal((1 + s % 3, D)).astype(np.float16) for s in seq
        ]
        yield AccountChunk(seq, vecs, posts)


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("index build")]


def test_reading_ahead_gives_every_chunk_in_order_quantised() -> None:
    want = list(_chunks(40, np.random.default_rng(1)))
    got = list(index_sync._read_ahead(_chunks(40, np.random.default_rng(1)), D))
    assert [c.seq.tolist() for c, _ in got] == [c.seq.tolist() for c in want]
    for (_, q), c in zip(got, want, strict=True):
        assert q is not None and c.posts is not None
        ref = QuantizedPosts.of(c.posts, D)
        np.testing.assert_array_equal(q.codes, ref.codes)
        np.testing.assert_array_equal(q.sizes, ref.sizes)
    assert not _reader_threads()


def test_a_reading_error_reaches_the_build_and_stopping_early_ends_the_reader() -> None:
    with pytest.raises(RuntimeError, match="connection lost"):
        list(index_sync._read_ahead(_chunks(40, np.random.default_rng(1), fail_at=21), D))
    for _ in index_sync._read_ahead(_chunks(400, np.random.default_rng(1)), D, depth=1):
        break  # the build failed on its first chunk
    assert not _reader_threads()


def test_a_rebuild_equals_adding_chunk_by_chunk(tmp_path: Path) -> None:
    class Store:
        def account_vector_chunks(
            self, space: str, kind: str, with_posts: bool = False, shard: object = None
        ) -> Iterator[AccountChunk]:
            return _chunks(60, np.random.default_rng(2))

        def post_count(self, space: str, kind: str, shard: object = None) -> int:
            return sum(len(p) for c in _chunks(60, np.random.default_rng(2)) for p in c.posts or [] if p is not None)

        def space_dim(self, space: str) -> int:
            return D

    seq, ver = np.arange(60), np.arange(60) + 100
    res = index_sync._rebuild(
        Store(),
        tmp_path,
        "head:x",
        "m",
        IndexLayout(exact_threshold=10, post_dim=D),  # type: ignore[arg-type]
        seq,
        ver,
        "test",
    )
    ref = VectorIndex(D, "hnsw", "float32", D)
    for c in _chunks(60, np.random.default_rng(2)):
        ref.add(c.seq, ver[c.seq], c.vectors, c.posts)
    got = res.index
    assert got.posts is not None and ref.posts is not None and res.added == 60
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_array_equal(got.versions, ref.versions)
    np.testing.assert_array_equal(got.posts.count, ref.posts.count)
    np.testing.assert_array_equal(got.posts.start, ref.posts.start)
    np.testing.assert_array_equal(got.posts.codes[: got.posts.n], ref.posts.codes[: ref.posts.n])
    for pos in (0, 1, 13, 59):
        a, b = got.posts.of(pos), ref.posts.of(pos)
        assert (a is None and b is None) or np.array_equal(a, b)  # type: ignore[arg-type]
    # and both hold the posts given: unknown ones as unknown, the others within half a step
    given = [p for c in _chunks(60, np.random.default_rng(2)) for p in c.posts or []]
    for pos, posts in enumerate(given):
        held = got.posts.of(pos)
        if posts is None:
            assert held is None and got.posts.count[pos] == -1
        else:
            assert held is not None
            step = np.abs(posts.astype(np.float32)).max(axis=1, keepdims=True) / 127
            assert (np.abs(held - posts.astype(np.float32)) <= 0.51 * step + 1e-6).all(), pos
    np.testing.assert_allclose(got.search(ref.vectors()[:5], 3)[0], ref.search(ref.vectors()[:5], 3)[0], atol=1e-6)
    assert isinstance(PostMatrix.load(res.manifest and tmp_path / "current", D), PostMatrix)
