"""The shard files a serving engine maps: read at random, only the pages a query asks for."""

from __future__ import annotations

import gc
import mmap
import os
import time
from pathlib import Path

import numpy as np
import pytest

from congruence.indexer.generations import cached_bytes, load_mapped, prefetch, sha256_file

ROWS, WIDTH = 65_536, 256  # 16 MB of int8 rows, 16 a page
HEADER = 128  # a .npy file's header, before the rows
HEADER_READ = 64 * 1024  # what reading the header may bring into the page cache with it


def _fs_type(path: Path) -> str:
    """The file system ``path`` is on (the longest mount point above it)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fs, *_ = line.split()
        if str(path).startswith(point) and len(point) > len(best):
            best, kind = point, fs
    return kind


@pytest.fixture
def rows_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    if _fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is in memory: its files are the page cache, and cannot leave it")
    arr = np.random.default_rng(0).integers(-127, 128, (ROWS, WIDTH), dtype=np.int8)
    path = tmp_path / "post_codes.npy"
    np.save(path, arr)
    with path.open("rb") as f:
        os.fsync(f.fileno())  # dirty pages cannot be dropped
    return path, arr


def _whole(path: Path) -> int:
    return -(-path.stat().st_size // mmap.PAGESIZE) * mmap.PAGESIZE


def _pages(rows: np.ndarray) -> int:
    first = (HEADER + rows * WIDTH) // mmap.PAGESIZE
    last = (HEADER + (rows + 1) * WIDTH - 1) // mmap.PAGESIZE
    return len(np.unique(np.concatenate([first, last])))


def _mapped_rss(path: Path) -> int:
    """Bytes of this process's mappings of ``path`` that are resident (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1]) * 1024
    return total


def _until(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``check()`` holds before ``timeout`` s (a read ahead lands in the background)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_sparse_file_maps_and_reads_only_the_rows_asked(rows_file: tuple[Path, np.ndarray]) -> None:
    path, arr = rows_file
    sha256_file(path)
    assert cached_bytes(path) == _whole(path)  # a plain checksum leaves the file cached
    sha256_file(path, uncache=True)
    assert cached_bytes(path) == 0
    mapped = load_mapped(path, hot=False)
    rows = np.random.default_rng(1).choice(ROWS, 40, replace=False)
    assert np.array_equal(mapped[rows], arr[rows])
    # the pages of those rows, not 128 KB read ahead of each (5 MB), nor the cached pages
    # around them; and the few read ahead of np.load's header
    pages = _pages(rows) * mmap.PAGESIZE
    assert pages <= cached_bytes(path) <= pages + HEADER_READ
    assert _mapped_rss(path) == pages


def test_prefetch_reads_the_rows_pages_before_they_are_touched(rows_file: tuple[Path, np.ndarray]) -> None:
    path, arr = rows_file
    sha256_file(path, uncache=True)
    mapped = load_mapped(path, hot=False)
    rows = np.random.default_rng(2).choice(ROWS, 60, replace=False)
    prefetch(mapped, rows)
    pages = _pages(rows) * mmap.PAGESIZE
    assert _until(lambda: pages <= cached_bytes(path) <= pages + HEADER_READ), (cached_bytes(path), pages)
    assert _mapped_rss(path) == 0  # read, not yet mapped
    assert np.array_equal(mapped[rows], arr[rows])
    prefetch(mapped[:0], rows[:0])  # nothing to read: no error


def test_a_hot_file_is_read_and_mapped_whole_when_loaded(rows_file: tuple[Path, np.ndarray]) -> None:
    path, arr = rows_file
    sha256_file(path, uncache=True)
    mapped = load_mapped(path, hot=True)
    assert cached_bytes(path) == _whole(path)
    assert _mapped_rss(path) == _whole(path)  # no query faults on it
    assert np.array_equal(mapped[-3:], arr[-3:])


def test_a_paged_index_reads_its_post_vectors_as_queries_touch_them(tmp_path: Path) -> None:
    """``CONGRUENCE_POST_VECTORS``: 'cached' leaves the per-post vectors in the page cache after
    the load's checksum, 'paged' drops them and reads each gather's pages ahead; both gather
    the same vectors. ('auto' is paged for IVF-PQ shards: ``test_shards``.)"""
    if _fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is in memory: its files are the page cache, and cannot leave it")
    from congruence.core.settings import load_settings
    from congruence.indexer.index import VectorIndex
    from congruence.indexer.post_matrix import QuantizedPosts

    with pytest.raises(ValueError, match="CONGRUENCE_POST_VECTORS: expected auto, cached or paged, got 'ram'"):
        load_settings({"CONGRUENCE_POST_VECTORS": "ram"})
    assert load_settings({}).post_vectors == "auto"
    assert load_settings({"CONGRUENCE_POST_VECTORS": "paged"}).post_vectors == "paged"
    rng = np.random.default_rng(3)
    n, d = 20_000, 64
    posts = rng.standard_normal((n, 4, d)).astype(np.float32)
    pooled = posts.mean(axis=1) / np.linalg.norm(posts.mean(axis=1), axis=1, keepdims=True)
    index = VectorIndex(d, "flat", "float32", post_dim=d)
    index.add(np.arange(1, n + 1), np.ones(n, np.int64), pooled, QuantizedPosts.of(list(posts), d))
    index.save(tmp_path, "head:x", "head:x", 0)
    codes = next(tmp_path.glob("*/post_codes.npy"))
    positions = rng.choice(n, 50, replace=False)
    cached, _ = VectorIndex.load(tmp_path, mapped=True)
    assert cached_bytes(codes) == _whole(codes) and not cached.posts.paged  # type: ignore[union-attr]
    want = cached.posts.padded(positions)  # type: ignore[union-attr]
    del cached  # pages a process maps stay in the cache (a replica's, while another loads)
    gc.collect()
    paged, _ = VectorIndex.load(tmp_path, mapped=True, paged=True)
    assert cached_bytes(codes) <= HEADER_READ and paged.posts.paged  # type: ignore[union-attr]
    got = paged.posts.padded(positions)  # type: ignore[union-attr]
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # each account's 4 posts of 64 bytes: one page, or two where they straddle a boundary
    assert 50 * mmap.PAGESIZE <= cached_bytes(codes) <= 100 * mmap.PAGESIZE + HEADER_READ
