"""IVF-PQ for shards past what a graph holds in memory: 64-byte codes in RAM, vectors on disk.

An ``IndexIVFPQ`` (inner product) keeps each account as its PQ code (``dim / 4`` bytes, 64
for the head's 256-d space) in the inverted list of its nearest centroid. Its coarse
quantiser and its codebook are trained once (``train_ivfpq``) and copied into every shard,
so every shard's codes, and so their scores, are comparable. A search probes ``nprobe``
lists, takes ``k + REFINE_EXTRA`` PQ candidates (``REFINE_FACTOR × k`` past k = 200) and
re-scores them with the vectors kept beside the index, as FAISS' ``IndexRefine`` does with
the refinement vectors left on disk (``RefineVectors``, memory-mapped when served: on disk,
not in the process). At 8 bits (the default: int8 with a scale a row) their scores are off
by 3e-4 on average and 3e-3 at most at 256 dimensions; at 16 (float16) by 1e-5, for twice
the disk and page cache (512 against 258 bytes an account). Filters pass a bitmap of
positions into the probe; a selective filter is scanned over the on-disk vectors instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from congruence.indexer.generations import load_mapped
from congruence.indexer.post_matrix import quantize

_faiss: Any = faiss
logger = logging.getLogger(__name__)
# chosen by ``python -m bench.ivf_tune`` on queries of its own, at one shard of the 10M
# benchmark (2.5M accounts, 4,096 lists): with 64-byte codes, 64 probes and k + 800 re-scored
# held recall@10 0.998 and recall@200 0.975 on the check queries; 32-byte codes needed
# k + 3,200 (4x the reads) for recall@200 0.95 (docs/performance.md); past k = 200 the
# re-score takes 5 x k, the tuned point's ratio (k + 800 = 5k at k = 200)
NPROBE = 64
REFINE_EXTRA, REFINE_FACTOR = 800, 5
SCAN_CHUNK = 200_000  # rows of on-disk vectors scored at a time by a scan


def train_ivfpq(sample: np.ndarray, nlist: int, m: int = 0) -> Any:
    """An empty ``IndexIVFPQ`` trained on ``sample`` (L2-normalised rows): ``nlist`` lists,
    ``m`` sub-quantisers of 8 bits (default dim/4: 64 bytes a vector at 256-d; fewer bits
    when the sample is too small to train 256 centroids)."""
    d = sample.shape[1]
    if not m:
        m = max(j for j in range(1, max(1, d // 4) + 1) if d % j == 0)  # FAISS: m divides d
        if 4 * m != d:
            logger.warning("IVF-PQ at %d dimensions: %d-byte codes (dim / 4 does not divide it)", d, m)
    nbits = min(8, int(np.log2(max(len(sample), 2))))  # 8 bits need 256 training points a sub-quantiser
    quantizer: Any = faiss.IndexFlatIP(d)
    index = _faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()
    index.train(np.ascontiguousarray(sample, np.float32))
    return index


FILES_Q8 = ("refine_q8.npy", "refine_scale.npy")  # int8 codes, (n,) float16 scales
FILE_F16 = "refine.npy"  # float16 rows (``CONGRUENCE_SHARD_REFINE_BITS=16``, and every shard built before it)
REFINE_BITS = (8, 16)


def bits_of(files: Iterable[str]) -> int:
    """The precision of the re-score vectors of a generation holding ``files`` (its manifest's)."""
    return 8 if FILES_Q8[0] in set(files) else 16


@dataclass
class RefineVectors:
    """(n, d) vectors beside an IVF-PQ index, at 8 bits: int8 codes, row i being
    ``codes[i] * scale[i]`` (quantised as the per-post vectors are: ``post_matrix.quantize``),
    or at 16: float16 rows and no scales (``scale`` None), twice the disk for scores off by
    1e-5 instead of 3e-4."""

    codes: np.ndarray  # (n, d) int8, or float16; a memory map when served
    scale: np.ndarray | None  # (n,) float16, in memory (2 bytes an account)

    @property
    def bits(self) -> int:
        return 16 if self.scale is None else 8

    @classmethod
    def empty(cls, d: int, bits: int = 8) -> RefineVectors:
        return cls.of(np.zeros((0, d), np.float32), bits)

    @classmethod
    def of(cls, xb: np.ndarray, bits: int = 8) -> RefineVectors:
        """``xb`` (rows of floats) at ``bits`` (a memory map is quantised a block at a time)."""
        if bits not in REFINE_BITS:
            raise ValueError(f"re-score vectors: expected 8 or 16 bits, got {bits}")
        return cls(*quantize(xb)) if bits == 8 else cls(np.asarray(xb, np.float16), None)

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def join(cls, parts: list[RefineVectors], bits: int) -> RefineVectors:
        """``parts`` in one, at ``bits``: parts at 16 bits are quantised for 8; a part at 8 is
        never widened (an index keeps the precision it was built with)."""
        if bits == 16:
            if any(p.bits != 16 for p in parts):
                raise ValueError("16-bit re-score vectors cannot take 8-bit parts: rebuild the index")
            return cls(np.concatenate([p.codes for p in parts]), None)
        parts = [p if p.bits == 8 else RefineVectors.of(p.codes, 8) for p in parts]
        return cls(np.concatenate([p.codes for p in parts]), np.concatenate([p.scale for p in parts]))  # type: ignore[misc]

    def scores(self, pos: np.ndarray, xq: np.ndarray) -> np.ndarray:
        """(len(xq), len(pos)): each query's inner product with the rows at ``pos``."""
        s = xq @ self.codes[pos].astype(np.float32).T
        return s * self.scale[pos].astype(np.float32) if self.scale is not None else s

    def rows(self, pos: np.ndarray | None = None) -> np.ndarray:
        """(n, d) float32 rows at ``pos`` (all when None)."""
        codes = self.codes if pos is None else self.codes[pos]
        out = codes.astype(np.float32)
        if self.scale is not None:
            out *= (self.scale if pos is None else self.scale[pos]).astype(np.float32)[:, None]
        return out

    def save(self, folder: Path) -> None:
        if self.scale is None:
            np.save(folder / FILE_F16, self.codes)
            return
        for name, arr in zip(FILES_Q8, (self.codes, self.scale), strict=True):
            np.save(folder / name, arr)

    @classmethod
    def load(cls, folder: Path, files: Iterable[str], dim: int, mapped: bool, paged: bool = False) -> RefineVectors:
        """The vectors in ``files`` (a generation's, as its manifest lists them: int8 codes and
        scales, or float16 rows). mapped: the codes or rows memory-mapped copy-on-write (the
        scales are read); paged: and read and mapped whole now (``load_mapped``, hot:
        ``CONGRUENCE_POST_VECTORS=paged``, where a search reads 1,000 of them)."""
        q8 = bits_of(files) == 8
        name = FILES_Q8[0] if q8 else FILE_F16
        codes = (
            load_mapped(folder / name, hot=True)
            if mapped and paged
            else np.load(folder / name, mmap_mode="c" if mapped else None)
        )
        scale = np.load(folder / FILES_Q8[1]) if q8 else None
        if (
            codes.ndim != 2
            or codes.shape[1] != dim
            or codes.dtype != (np.int8 if q8 else np.float16)
            or (scale is not None and (scale.dtype != np.float16 or scale.shape != (len(codes),)))
        ):
            raise ValueError(f"refinement vectors under {folder} have the wrong type or shape")
        return cls(codes, scale)


def search(
    index: Any,
    refine: RefineVectors,
    xq: np.ndarray,
    k: int,
    bitmap: np.ndarray | None,
    nprobe: int = NPROBE,
    extra: int = REFINE_EXTRA,
) -> tuple[np.ndarray, np.ndarray]:
    """(D, P): re-scored scores and positions of each query's best k among the PQ candidates of
    ``nprobe`` lists (``bitmap``: the positions allowed, packed little-endian; None: all)."""
    r = min(index.ntotal, max(k + extra, REFINE_FACTOR * k))
    sel = _faiss.IDSelectorBitmap(bitmap) if bitmap is not None else None
    _, cand = index.search(xq, r, params=_faiss.SearchParametersIVF(nprobe=nprobe, sel=sel))
    D = np.full((len(xq), k), -np.inf, np.float32)
    P = np.full((len(xq), k), -1, np.int64)
    for i, row in enumerate(cand):
        row = row[row >= 0]
        if not len(row):
            continue
        order = np.argsort(row)  # in file order: the reads from disk go forward
        rescored = refine.scores(row[order], xq[i : i + 1])[0]
        best = np.argsort(-rescored, kind="stable")[:k]
        D[i, : len(best)], P[i, : len(best)] = rescored[best], row[order][best]
    return D, P


def scan(refine: RefineVectors, xq: np.ndarray, k: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D, P): the best k among ``positions``, scored on the on-disk vectors."""
    D = np.full((len(xq), k), -np.inf, np.float32)
    P = np.full((len(xq), k), -1, np.int64)
    for start in range(0, len(positions), SCAN_CHUNK):
        pos = positions[start : start + SCAN_CHUNK]
        scores = refine.scores(pos, xq)
        both_d = np.concatenate([D, scores], axis=1)
        both_p = np.concatenate([P, np.broadcast_to(pos, scores.shape)], axis=1)
        top = np.argsort(-both_d, axis=1, kind="stable")[:, :k]
        D, P = np.take_along_axis(both_d, top, axis=1), np.take_along_axis(both_p, top, axis=1)
    return D, P
