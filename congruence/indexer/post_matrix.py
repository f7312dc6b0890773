"""Per-post vectors of indexed accounts, held in memory beside the FAISS index.

The congruence head reranks FAISS candidates from their per-post projections. Reading
them from PostgreSQL on every query cost ~9 ms at 100k accounts and grew with the table
(200 TOASTed ``bytea`` values that stop fitting shared buffers), so a serving process
keeps them here: int8 codes with one float16 scale per post (a quarter of float32; 8M
posts of 256-d take 2.1 GB), stored CSR-style and aligned with the index's positions, so
they are added, tombstoned, saved and loaded together with it. PostgreSQL stays the
system of record (float16); this is a derived copy, rebuilt from it like the index.

Quantisation is symmetric per post: ``code = round(127 · v / max|v|)``. For L2-normalised
256-d rows the error of an inner product is about 1e-3, well under the gaps the head's
ranking depends on (the rerank test checks the order against float scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from congruence.indexer.generations import load_mapped, prefetch

BLOCK = 1024  # posts quantised at a time: 1 MB of float32 at 256-d
FILES = ("post_codes.npy", "post_scales.npy", "post_start.npy", "post_count.npy")
MAPPED = FILES[:1]  # what a serving process maps instead of reading: the codes


def quantize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float rows -> ((n, d) int8 codes, (n,) float16 scales); zero rows get scale 0.

    The codes are computed with the float16-rounded scale, so the error stays within half a
    step (an L2-normalised row's scale, >= 1 / (127 sqrt(d)), is a normal float16). Done in
    place, ``BLOCK`` rows at a time, so the float32 work stays in the CPU's cache (3-4x
    faster than whole-array passes over 8M posts; the codes are the same)."""
    rows = np.asarray(rows)
    n, d = rows.shape if rows.ndim == 2 else (len(rows), 0)
    codes, scales = np.empty((n, d), np.int8), np.empty(n, np.float16)
    work = np.empty((min(BLOCK, n), d), np.float32)
    for b in range(0, n, BLOCK):
        x = work[: min(BLOCK, n - b)]
        x[...] = rows[b : b + len(x)]
        s = (np.abs(x).max(axis=1) / 127.0).astype(np.float16) if d else np.zeros(len(x), np.float16)
        scales[b : b + len(x)] = s
        np.divide(x, np.where(s > 0, s.astype(np.float32), 1.0)[:, None], out=x)
        np.rint(x, out=x)
        np.clip(x, -127, 127, out=x)
        codes[b : b + len(x)] = x
    return codes, scales


@dataclass(frozen=True)
class QuantizedPosts:
    """Per-post vectors of consecutive positions, quantised (``quantize``) ahead of ``append``:
    codes (n, d) int8 and scales (n,) float16 of all their posts in order, and sizes (k,), each
    position's post count (-1: unknown). An index build quantises in its reading thread."""

    codes: np.ndarray
    scales: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, sets: Sequence[np.ndarray | None], dim: int) -> QuantizedPosts:
        sizes = np.array([-1 if s is None else len(s) for s in sets], np.int64)
        given = [s for s in sets if s is not None and len(s)]
        if any(s.ndim != 2 or s.shape[1] != dim for s in given):
            raise ValueError(f"post vectors: expected (n, {dim}) arrays")
        rows = np.concatenate(given) if given else np.zeros((0, dim), np.float16)  # as given: float16 from the store
        codes, scales = quantize(rows)
        return cls(codes, scales, sizes)


class PostMatrix:
    """Posts of position ``p`` are rows ``start[p] : start[p] + count[p]`` of ``codes``.

    ``count[p]`` is -1 for a position whose per-post vectors are unknown (the head cannot
    score that account; it keeps its FAISS rank, after the scored ones).
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.codes = np.zeros((0, dim), np.int8)  # capacity rows; the first ``n`` are used
        self.scales = np.zeros(0, np.float16)
        self.start = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.int32)
        self.n = 0
        self.width = 1  # the largest post count of a position (at least 1): kept, not a scan a query
        self.paged = False  # memory-mapped and mostly not in memory: gathers read ahead (``load``)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.scales.nbytes + self.start.nbytes + self.count.nbytes)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` more posts (one allocation for a rebuild of known size)."""
        need = self.n + rows
        if need <= len(self.codes):
            return
        cap = max(need, 2 * len(self.codes), 1024)
        codes = np.zeros((cap, self.dim), np.int8)
        codes[: self.n] = self.codes[: self.n]
        scales = np.zeros(cap, np.float16)
        scales[: self.n] = self.scales[: self.n]
        self.codes, self.scales = codes, scales

    def append(self, sets: Sequence[np.ndarray | None] | QuantizedPosts) -> None:
        """One entry per new position, in order: its (n_posts, dim) vectors, or None if unknown
        (or all of them quantised already)."""
        q = sets if isinstance(sets, QuantizedPosts) else QuantizedPosts.of(sets, self.dim)
        total = len(q.codes)
        if total and q.codes.shape[1] != self.dim:
            raise ValueError(f"post vectors: expected (n, {self.dim}) arrays")
        self.reserve(total)
        self.codes[self.n : self.n + total] = q.codes
        self.scales[self.n : self.n + total] = q.scales
        starts = self.n + np.concatenate([[0], np.cumsum(np.maximum(q.sizes, 0))[:-1]]).astype(np.int64)
        self.n += total
        self.start = np.concatenate([self.start, starts[: len(q.sizes)]])
        self.count = np.concatenate([self.count, q.sizes.astype(np.int32)])
        self.width = max(self.width, int(q.sizes.max()) if len(q.sizes) else 1)

    def of(self, pos: int) -> np.ndarray | None:
        """(n_posts, dim) float32 vectors of one position, or None when unknown."""
        c = int(self.count[pos])
        if c < 0:
            return None
        s = int(self.start[pos])
        return self.codes[s : s + c].astype(np.float32) * self.scales[s : s + c, None].astype(np.float32)

    def padded(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((C, P, dim) float32 zero-padded vectors, (C, P) bool mask) of positions with count > 0.

        P is the largest post count among them (at least 1).
        """
        positions = np.asarray(positions, np.int64)
        counts = np.maximum(self.count[positions], 0)
        width = max(1, int(counts.max()) if len(counts) else 1)
        cols = np.arange(width)
        mask = cols[None, :] < counts[:, None]
        if self.n == 0:
            return np.zeros((len(positions), width, self.dim), np.float32), mask
        at = np.where(mask, self.start[positions][:, None] + cols[None, :], 0).ravel()
        if self.paged:  # the misses read at once, not one by one as index_select reaches them
            prefetch(self.codes, at[mask.ravel()])
        rows = torch.from_numpy(at)
        # torch's index_select + float() on int8: 2.5x numpy's take + astype (0.25 vs 0.63 ms
        # for 200 candidates); padding rows get scale 0
        out = torch.from_numpy(self.codes).index_select(0, rows).float()
        scales = torch.from_numpy(self.scales).index_select(0, rows).float() * torch.from_numpy(mask.ravel())
        out.mul_(scales[:, None])
        return out.numpy().reshape(len(positions), width, self.dim), mask

    # -- persistence (called by VectorIndex.save / load, inside a generation folder) -------
    def save(self, folder: Path) -> None:
        arrays: tuple[np.ndarray, ...] = (self.codes[: self.n], self.scales[: self.n], self.start, self.count)
        for name, arr in zip(FILES, arrays, strict=True):
            np.save(folder / name, arr)

    @classmethod
    def load(cls, folder: Path, dim: int, mapped: bool = False, paged: bool = False) -> PostMatrix:
        """mapped: the codes memory-mapped copy-on-write, not read into this process (a serving
        engine's: its processes share the pages, and the OS keeps the hot ones in memory).
        paged: and read at random (``load_mapped``), their pages mostly not in memory
        (``VectorIndex.load``), so each gather reads its rows' pages ahead, all at once."""
        self = cls(dim)
        self.codes, self.scales, self.start, self.count = (
            (load_mapped(folder / name, hot=False) if paged else np.load(folder / name, mmap_mode="c"))
            if mapped and name in MAPPED
            else np.load(folder / name)
            for name in FILES
        )
        self.scales = self.scales.astype(np.float16, copy=False)
        self.count = self.count.astype(np.int32, copy=False)
        self.n = len(self.codes)
        self.width = max(1, int(self.count.max()) if len(self.count) else 1)
        self.paged = mapped and paged
        if (
            self.codes.ndim != 2
            or self.codes.shape[1] != dim
            or len(self.scales) != self.n
            or len(self.start) != len(self.count)
            or (self.start + np.maximum(self.count, 0) > self.n).any()
        ):
            raise ValueError(f"per-post vectors under {folder} have inconsistent shapes")
        return self
