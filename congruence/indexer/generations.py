"""An index's generation folders on disk: checksums, durable writes, pruning old generations,
and the memory-mapped arrays a serving process reads in place."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import shutil
from pathlib import Path

import numpy as np

MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14; Python names it from 3.13
WILLNEED_CHUNK = 8 << 20  # a read ahead of a whole file, asked this much at a time (one call reads 8 MB at most)


def sha256_file(path: Path, uncache: bool = False) -> str:
    """uncache: drop the file's pages from the page cache once hashed (a file about to be
    memory-mapped: see ``load_mapped``)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        if uncache and hasattr(os, "posix_fadvise"):  # not on macOS
            # the whole file at once: a range drops only the large folios wholly inside it.
            # Pages a process maps, and dirty ones, stay: a replica that maps them keeps them
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return h.hexdigest()


def load_mapped(path: Path, hot: bool) -> np.ndarray:
    """The ``.npy`` array at ``path`` memory-mapped copy-on-write, for rows read at random
    from a file the page cache mostly does not hold (``CONGRUENCE_POST_VECTORS=paged``).

    Linux's defaults suit a file read in order: a fault reads 128 KB or more ahead, and a
    page the cache holds in a large folio (as a file read in order leaves it) is mapped with
    its whole folio. For a few hundred scattered rows a query of a file that does not fit,
    that fills the cache with rows no query asked for, and a miss costs 5x a single page's
    read (343 against 65 us here). ``MADV_RANDOM`` reads only the page a fault needs. (On a
    file the cache holds, the defaults are better: the read ahead around the few misses warms
    the rest. At 10M on this machine, ``MADV_RANDOM`` over cached files took p50 from 32 to
    51 ms, so a 'cached' engine keeps the defaults.)

    hot: every query reads many rows of it (the re-score vectors: 1,000 rows a search), so
    it is read and mapped whole now (``MADV_POPULATE_READ``), and the queries neither wait
    on the disk nor fault on it. Otherwise (the per-post vectors, 4x larger, of
    which a query reads a hundred accounts) a page is read when a query needs it, and the
    caller drops the file's cached pages first (``sha256_file(uncache=True)``), or the
    folios its checksum left would be mapped whole.
    """
    arr = np.load(path, mmap_mode="c")
    view: mmap.mmap | None = getattr(arr, "_mmap", None)
    if view is None or not len(view):  # an empty array maps nothing
        return arr
    if not hot:
        view.madvise(mmap.MADV_RANDOM)
        return arr
    try:  # read and mapped now, so that no query faults on it
        view.madvise(MADV_POPULATE_READ)
    except OSError:  # before Linux 5.14: read ahead in the background, mapped as touched
        for start in range(0, len(view), WILLNEED_CHUNK):
            view.madvise(mmap.MADV_WILLNEED, start, min(WILLNEED_CHUNK, len(view) - start))
    return arr


def prefetch(arr: np.ndarray, rows: np.ndarray) -> None:
    """Start reading the pages of ``rows`` of a mapped 2-D array (``load_mapped``), all at
    once, so that the reads that miss the page cache overlap instead of waiting one by one
    (the pages already cached cost a system call each)."""
    view: mmap.mmap | None = getattr(arr, "_mmap", None)
    if view is None or not len(rows) or not len(view):
        return
    base = arr.ctypes.data - np.frombuffer(view, np.uint8).ctypes.data  # where the rows start in the mapping
    at = base + np.asarray(rows, np.int64) * arr.strides[0]
    pages = np.unique(np.concatenate([at, at + arr.strides[0] - 1]) // mmap.PAGESIZE)
    for page in pages.tolist():
        view.madvise(mmap.MADV_WILLNEED, page * mmap.PAGESIZE, mmap.PAGESIZE)


def cached_bytes(path: Path) -> int:
    """Bytes of the file at ``path`` that the page cache holds, whoever maps them (``mincore``
    over a fresh mapping, which touches nothing)."""
    size = path.stat().st_size
    if not size:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as view:
        buf = ctypes.c_char.from_buffer(view)
        vec = np.zeros(-(-size // mmap.PAGESIZE), np.uint8)
        addr, out = ctypes.c_void_p(ctypes.addressof(buf)), ctypes.c_void_p(vec.ctypes.data)
        rc = libc.mincore(addr, ctypes.c_size_t(size), out)
        del buf  # the mapping closes only once nothing points into it
    if rc != 0:
        raise OSError(ctypes.get_errno(), f"mincore failed on {path}")
    return int((vec & 1).sum()) * mmap.PAGESIZE


def fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(root: Path, keep: str) -> None:
    """Remove older generations, keeping the newest other one for readers mid-load."""
    try:  # another saver may have switched `current` since: never remove what it points to
        live = os.readlink(root / "current")
    except OSError:
        live = None
    gens: list[tuple[float, Path]] = []
    for p in root.glob("gen-*"):
        try:
            if p.is_dir() and not p.name.endswith(".tmp"):
                gens.append((p.stat().st_mtime, p))
        except FileNotFoundError:  # pruned meanwhile by another saver
            continue
    old = [g for _, g in sorted(gens) if g.name not in (keep, live)]
    for g in old[:-1]:
        shutil.rmtree(g, ignore_errors=True)
