"""A FAISS index over account vectors, with removal, filters and atomic persistence.

Positions in the FAISS index are internal; ``labels[pos]`` is the account's ``seq`` (its
stable integer id in PostgreSQL). Removal marks a position dead (a tombstone) and the
owner rebuilds when too many are dead. Vectors are L2-normalised, so inner product is
cosine similarity.

Search guarantees k results whenever k live accounts pass the filter: selective filters
are answered exactly over the allowed subset, broad ones through HNSW with an ID
selector, falling back to exact search for any query that came back short.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from congruence.core.vectors import as_matrix

logger = logging.getLogger(__name__)

HNSW_M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = 96
SUBSET_FRACTION = 0.05  # filters passing fewer than this share of accounts go exact


class IndexCorrupt(Exception):
    """The files on disk are missing, unreadable, or fail their checksum."""


@dataclass(frozen=True)
class Manifest:
    space: str
    model: str
    dim: int
    kind: str
    count: int
    version_sum: int
    created_at: float
    checksums: dict[str, str]


class VectorIndex:
    def __init__(self, dim: int, kind: str = "flat"):
        if kind not in ("flat", "hnsw"):
            raise ValueError(f"index kind must be flat or hnsw, got {kind!r}")
        self.dim = dim
        self.kind = kind
        if kind == "flat":
            self.index: faiss.Index = faiss.IndexFlatIP(dim)
        else:
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.labels = np.zeros(0, np.int64)
        self.versions = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)
        self._pos_by_seq = np.full(1, -1, np.int64)

    # -- bookkeeping ----------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())

    @property
    def n_dead(self) -> int:
        return self.ntotal - self.n_alive

    def _index_positions(self) -> None:
        top = int(self.labels.max()) + 1 if len(self.labels) else 1
        self._pos_by_seq = np.full(top, -1, np.int64)
        live = np.flatnonzero(self.alive)
        self._pos_by_seq[self.labels[live]] = live

    def positions(self, seqs: np.ndarray) -> np.ndarray:
        """Live positions of ``seqs`` (-1 where absent)."""
        seqs = np.asarray(seqs, np.int64)
        out = np.full(len(seqs), -1, np.int64)
        ok = (seqs >= 0) & (seqs < len(self._pos_by_seq))
        out[ok] = self._pos_by_seq[seqs[ok]]
        return out

    def live_versions(self) -> dict[int, int]:
        live = np.flatnonzero(self.alive)
        return dict(zip(self.labels[live].tolist(), self.versions[live].tolist(), strict=True))

    def add(self, seqs: np.ndarray, versions: np.ndarray, xb: np.ndarray) -> None:
        """Add vectors (L2-normalised rows); an existing seq is replaced."""
        xb = as_matrix(xb, self.dim, name="index vectors")
        seqs = np.asarray(seqs, np.int64)
        versions = np.asarray(versions, np.int64)
        if len(np.unique(seqs)) != len(seqs):  # a seq repeated in one batch: its last row wins
            _, last = np.unique(seqs[::-1], return_index=True)
            keep = np.sort(len(seqs) - 1 - last)
            seqs, versions, xb = seqs[keep], versions[keep], xb[keep]
        self.remove(seqs)
        self.index.add(xb)
        self.labels = np.concatenate([self.labels, seqs])
        self.versions = np.concatenate([self.versions, versions])
        self.alive = np.concatenate([self.alive, np.ones(len(seqs), bool)])
        self._index_positions()

    def remove(self, seqs: np.ndarray) -> int:
        pos = self.positions(np.asarray(seqs, np.int64))
        pos = pos[pos >= 0]
        self.alive[pos] = False
        if len(pos):
            self._pos_by_seq[self.labels[pos]] = -1
        return len(pos)

    def vectors(self) -> np.ndarray:
        """(ntotal, dim) float32 view of the stored vectors (no copy)."""
        flat = self.index if self.kind == "flat" else faiss.downcast_index(self.index.storage)
        if self.ntotal == 0:
            return np.zeros((0, self.dim), np.float32)
        return faiss.rev_swig_ptr(flat.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)

    # -- search ---------------------------------------------------------------------
    def search(self, xq: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D, L): scores and seqs of the k best live vectors per query, -1 labels pad.

        allowed: optional (ntotal,) bool mask over positions (a filter).
        """
        xq = as_matrix(xq, self.dim, name="query vectors")
        mask = self.alive if allowed is None else (self.alive & allowed)
        n_ok = int(mask.sum())
        k_eff = min(k, n_ok)
        nq = len(xq)
        D = np.full((nq, k), -np.inf, np.float32)
        L = np.full((nq, k), -1, np.int64)
        if k_eff == 0:
            return D, L
        if self.kind == "flat" or n_ok <= SUBSET_FRACTION * self.ntotal:
            d, p = self._exact(xq, k_eff, mask, n_ok)
        else:
            d, p = self._hnsw(xq, k_eff, mask, n_ok)
        D[:, :k_eff] = d
        L[:, :k_eff] = np.where(p >= 0, self.labels[np.maximum(p, 0)], -1)
        return D, L

    def _gpu_flat(self) -> faiss.Index | None:
        """A GPU copy of a flat index when faiss sees GPUs (faiss-gpu), refreshed on change."""
        if self.kind != "flat" or faiss.get_num_gpus() == 0:
            return None
        cached = getattr(self, "_gpu", None)
        if cached is None or cached[0] != self.ntotal:
            self._gpu = (self.ntotal, faiss.index_cpu_to_all_gpus(self.index))
        return self._gpu[1]

    def _exact(self, xq: np.ndarray, k: int, mask: np.ndarray, n_ok: int) -> tuple[np.ndarray, np.ndarray]:
        if n_ok == self.ntotal and self.kind == "flat":
            return (self._gpu_flat() or self.index).search(xq, k)
        if n_ok <= SUBSET_FRACTION * self.ntotal:
            idx = np.flatnonzero(mask)
            scores = xq @ self.vectors()[idx].T
        else:
            idx = np.arange(self.ntotal)
            scores = xq @ self.vectors().T
            scores[:, ~mask] = -np.inf
        return _topk(scores, idx, k)

    def _hnsw(self, xq: np.ndarray, k: int, mask: np.ndarray, n_ok: int) -> tuple[np.ndarray, np.ndarray]:
        share = n_ok / max(self.ntotal, 1)
        ef = int(min(max(EF_SEARCH, 2 * k) / share, 2048))
        if n_ok == self.ntotal:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            d, p = self.index.search(xq, k, params=params)
        else:
            sel = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
            d, p = self.index.search(xq, k, params=params)
        short = np.flatnonzero((p < 0).any(axis=1))
        if len(short):  # the graph walk ran out of allowed neighbours: answer exactly
            d[short], p[short] = self._exact(xq[short], k, mask, n_ok)
        return d, p

    # -- persistence ----------------------------------------------------------------
    def save(self, root: Path, space: str, model: str, version_sum: int) -> Manifest:
        """Write a new generation under root and switch ``root/current`` to it atomically."""
        root.mkdir(parents=True, exist_ok=True)
        gen = root / f"gen-{time.time_ns()}-{os.getpid()}"
        tmp = gen.with_name(gen.name + ".tmp")
        tmp.mkdir()
        faiss.write_index(self.index, str(tmp / "index.faiss"))
        for name, arr in (("labels", self.labels), ("versions", self.versions), ("alive", self.alive)):
            np.save(tmp / f"{name}.npy", arr)
        sums = {f.name: _sha256(f) for f in sorted(tmp.iterdir())}
        man = Manifest(space, model, self.dim, self.kind, self.n_alive, version_sum, time.time(), sums)
        (tmp / "manifest.json").write_text(json.dumps(asdict(man), indent=1))
        _fsync_dir(tmp)
        tmp.rename(gen)
        link = root / f"current.{os.getpid()}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(gen.name)
        os.replace(link, root / "current")
        _fsync_dir(root)
        _prune(root, keep=gen.name)
        return man

    @classmethod
    def load(cls, root: Path) -> tuple[VectorIndex, Manifest]:
        cur = root / "current"
        try:
            gen = cur.resolve(strict=True)
            man = Manifest(**json.loads((gen / "manifest.json").read_text()))
            for name, digest in man.checksums.items():
                if _sha256(gen / name) != digest:
                    raise IndexCorrupt(f"{gen / name} fails its checksum")
            self = cls.__new__(cls)
            self.index = faiss.read_index(str(gen / "index.faiss"))
            self.dim, self.kind = man.dim, man.kind
            self.labels = np.load(gen / "labels.npy")
            self.versions = np.load(gen / "versions.npy")
            self.alive = np.load(gen / "alive.npy")
        except IndexCorrupt:
            raise
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
            raise IndexCorrupt(f"cannot read the index under {root}: {e}") from None
        if not (len(self.labels) == len(self.versions) == len(self.alive) == self.ntotal):
            raise IndexCorrupt(f"index under {root} has inconsistent sizes")
        self._index_positions()
        return self, man


def _topk(scores: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    d = np.take_along_axis(top, order, axis=1).astype(np.float32)
    p = idx[np.take_along_axis(part, order, axis=1)]
    p = np.where(np.isfinite(d), p, -1)
    return d, p


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(root: Path, keep: str) -> None:
    """Remove older generations, keeping the newest other one for readers mid-load."""
    gens = sorted((p for p in root.glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    old = [g for g in gens if g.name != keep and not g.name.endswith(".tmp")]
    for g in old[:-1]:
        shutil.rmtree(g, ignore_errors=True)
