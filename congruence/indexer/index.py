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

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from congruence.core.vectors import as_matrix
from congruence.indexer import ivf
from congruence.indexer.generations import fsync_dir, prune, sha256_file
from congruence.indexer.post_matrix import MAPPED as POST_FILES_MAPPED
from congruence.indexer.post_matrix import PostMatrix, QuantizedPosts

logger = logging.getLogger(__name__)
_faiss: Any = faiss  # the SWIG stubs lack the search parameters, selectors and storage fields used here

HNSW_M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = 96
SUBSET_FRACTION = 0.05  # filters passing fewer than this share of accounts go exact
# ... and so do filters whose allowed vectors hold at most this many floats: a selector
# scan costs ~0.3 us per allowed 256-d vector, while a filtered graph walk widens its
# beam by 1/share (2,000 of 20,000 allowed: 0.7 ms exact against 8.8 ms through HNSW)
EXACT_SCAN_FLOATS = 4_000_000
CODECS = ("float32", "sq8", "pq")


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
    codec: str = "float32"
    post_dim: int = 0


@dataclass(frozen=True)
class Selection:
    """Positions a search may return. mask: (ntotal,) bool; bitmap: the mask packed
    little-endian for FAISS' ``IDSelectorBitmap``; stamp: the index's change count then."""

    mask: np.ndarray
    n_ok: int
    bitmap: np.ndarray
    stamp: int
    filtered: bool = False  # made from a filter (not just the live positions)


class VectorIndex:
    """codec: how HNSW stores vectors: ``float32``, or ``sq8`` (8-bit scalar quantisation
    per dimension, a quarter of the memory; recall@10 stays above 0.97 at 1M, see
    docs/performance.md). post_dim > 0 keeps each account's per-post vectors beside it
    (``posts``, a ``PostMatrix``), for the head's rerank. An ``ivfpq`` index keeps its
    vectors for the re-score at ``refine_bits`` (8 or 16: ``ivf.RefineVectors``); a loaded
    one keeps the precision it was saved with."""

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        codec: str = "float32",
        post_dim: int = 0,
        template: Any = None,
        refine_bits: int = 8,
    ):
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise ValueError(f"index kind must be flat, hnsw or ivfpq, got {kind!r}")
        if codec not in CODECS or (kind == "flat" and codec != "float32") or ((kind == "ivfpq") != (codec == "pq")):
            raise ValueError(f"index codec must be float32, sq8 for hnsw, or pq for ivfpq, got {codec!r} for {kind}")
        self.dim = dim
        self.kind = kind
        self.codec = codec
        # ivfpq: the vectors beside the codes, re-scoring its candidates (8 or 16 bits)
        self.refine_bits = refine_bits
        self._refine: list[ivf.RefineVectors] = [ivf.RefineVectors.empty(dim, refine_bits)]
        self.index: Any  # the SWIG stubs lack the HNSW and IVF fields
        if kind == "ivfpq":  # a copy of the shared trained quantiser and codebook (``ivf.train_ivfpq``)
            if template is None or template.d != dim or not template.is_trained:
                raise ValueError("an ivfpq index needs a trained template of its dimension (ivf.train_ivfpq)")
            self.index = faiss.deserialize_index(faiss.serialize_index(template))  # a copy, of its own type
        elif kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif codec == "sq8":
            # per-dimension min/max ranges learnt from the first batch added (a rebuild's
            # first 50k accounts); widening them for later outliers cost more recall than it saved
            self.index = _faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = EF_CONSTRUCTION
        else:
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.posts: PostMatrix | None = PostMatrix(post_dim) if post_dim > 0 else None
        self.labels = np.zeros(0, np.int64)
        self.versions = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)
        self._pos_by_seq = np.full(1, -1, np.int64)
        self.source: Path | None = None  # the generation folder it was saved to or loaded from
        self._init_search()

    def _init_search(self) -> None:
        self.ef_search = EF_SEARCH  # HNSW breadth for unfiltered queries (CONGRUENCE_EF_SEARCH)
        self._stamp = 0  # bumped by every add and remove
        self._all: Selection | None = None
        self._params: dict[int, Any] = {}

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
        self._pos_by_seq = np.full(top, -1, np.int32 if self.ntotal < 2**31 else np.int64)
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

    def add(
        self,
        seqs: np.ndarray,
        versions: np.ndarray,
        xb: np.ndarray,
        posts: Sequence[np.ndarray | None] | QuantizedPosts | None = None,
    ) -> None:
        """Add vectors (L2-normalised rows); an existing seq is replaced.

        posts: with ``post_dim``, each row's (n_posts, post_dim) per-post vectors (None:
        unknown), or all of them quantised already (then ``seqs`` must be unique), required
        then and refused otherwise.
        """
        xb = as_matrix(xb, self.dim, name="index vectors")
        seqs = np.asarray(seqs, np.int64).reshape(-1)
        versions = np.asarray(versions, np.int64).reshape(-1)
        if not len(seqs) == len(versions) == len(xb):
            raise ValueError(
                f"index add: {len(seqs)} seqs, {len(versions)} versions and {len(xb)} vectors; "
                "expected one of each per row"
            )
        n_sets = len(posts.sizes) if isinstance(posts, QuantizedPosts) else len(posts) if posts is not None else 0
        if (posts is None) != (self.posts is None) or (posts is not None and n_sets != len(seqs)):
            raise ValueError("posts: one entry per added vector when the index keeps per-post vectors, none otherwise")
        if len(np.unique(seqs)) != len(seqs):  # a seq repeated in one batch: its last row wins
            if isinstance(posts, QuantizedPosts):
                raise ValueError("index add: quantised posts need unique seqs")
            _, last = np.unique(seqs[::-1], return_index=True)
            keep = np.sort(len(seqs) - 1 - last)
            seqs, versions, xb = seqs[keep], versions[keep], xb[keep]
            posts = [posts[int(i)] for i in keep] if posts is not None else None
        if not self.index.is_trained:  # sq8 learns its per-dimension ranges from the first batch
            self.index.train(xb)
        self.remove(seqs)
        if self.posts is not None and posts is not None:
            self.posts.append(posts)
        self.index.add(xb)
        if self.kind == "ivfpq":
            self._refine.append(ivf.RefineVectors.of(xb, self.refine_bits))
        self.labels = np.concatenate([self.labels, seqs])
        self.versions = np.concatenate([self.versions, versions])
        self.alive = np.concatenate([self.alive, np.ones(len(seqs), bool)])
        self._stamp += 1
        self._index_positions()

    def remove(self, seqs: np.ndarray) -> int:
        pos = self.positions(np.asarray(seqs, np.int64))
        pos = pos[pos >= 0]
        self.alive[pos] = False
        self._stamp += 1
        if len(pos):
            self._pos_by_seq[self.labels[pos]] = -1
        return len(pos)

    def quantize_refine(self) -> None:
        """An ivfpq index's float16 re-score vectors to 8 bits, in place (a sync saves it)."""
        self._refine = [ivf.RefineVectors.join(self._refine, 8)]
        self.refine_bits = 8

    @property
    def refine(self) -> ivf.RefineVectors:
        """The (ntotal, dim) re-score vectors of an ivfpq index (memory-mapped when served)."""
        if len(self._refine) > 1:
            self._refine = [ivf.RefineVectors.join(self._refine, self.refine_bits)]
        return self._refine[0]

    def vectors(self, positions: np.ndarray | None = None) -> np.ndarray:
        """(n, dim) float32 stored vectors at ``positions`` (all when None): a view of float32
        storage when all are asked for, else a copy (decoded for sq8)."""
        if self.kind == "ivfpq":
            return self.refine.rows(positions)
        store: Any = self.index if self.kind == "flat" else _faiss.downcast_index(self.index.storage)
        if self.ntotal == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.codec == "sq8":
            size = store.code_size
            codes = faiss.rev_swig_ptr(store.codes.data(), self.ntotal * size).reshape(self.ntotal, size)
            return store.sa_decode(codes if positions is None else codes[positions])
        xb = faiss.rev_swig_ptr(store.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)
        return xb if positions is None else xb[positions]

    # -- search ---------------------------------------------------------------------
    def select(self, allowed: np.ndarray | None = None) -> Selection:
        """The positions a search may return (live, and in ``allowed``), packed for FAISS once
        so that many queries with one filter share the work; cached for ``allowed=None``."""
        if allowed is None and self._all is not None and self._all.stamp == self._stamp:
            return self._all
        mask = self.alive if allowed is None else (self.alive & allowed)
        sel = Selection(mask, int(mask.sum()), np.packbits(mask, bitorder="little"), self._stamp, allowed is not None)
        if allowed is None:
            self._all = sel
        return sel

    def search(
        self, xq: np.ndarray, k: int, allowed: np.ndarray | Selection | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(D, L): scores and seqs of the k best live vectors per query, -1 labels pad.

        allowed: optional (ntotal,) bool mask over positions (a filter), or a ``select``ion.
        """
        xq = as_matrix(xq, self.dim, name="query vectors")
        sel = allowed if isinstance(allowed, Selection) else self.select(allowed)
        if sel.stamp != self._stamp:  # made before a change: drop what died since
            sel = self.select(np.pad(sel.mask, (0, self.ntotal - len(sel.mask))))
        k_eff = min(k, sel.n_ok)
        nq = len(xq)
        D = np.full((nq, k), -np.inf, np.float32)
        L = np.full((nq, k), -1, np.int64)
        if k_eff == 0:
            return D, L
        # the absolute budget is for filters: unfiltered, the graph beats a scan of everything
        small = sel.n_ok <= SUBSET_FRACTION * self.ntotal or (sel.filtered and sel.n_ok * self.dim <= EXACT_SCAN_FLOATS)
        if self.kind == "ivfpq":
            if small:
                d, p = ivf.scan(self.refine, xq, k_eff, np.flatnonzero(sel.mask))
            else:
                d, p = ivf.search(self.index, self.refine, xq, k_eff, sel.bitmap if sel.n_ok < self.ntotal else None)
        elif self.kind == "flat" or small:
            d, p = self._exact(xq, k_eff, sel)
        else:
            d, p = self._hnsw(xq, k_eff, sel)
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

    def _exact(self, xq: np.ndarray, k: int, sel: Selection) -> tuple[np.ndarray, np.ndarray]:
        if sel.n_ok == self.ntotal and self.kind == "flat":
            return (self._gpu_flat() or self.index).search(xq, k)
        # a scan of the stored codes that scores only the allowed positions: no copy of the
        # vectors (the sq8 codes are never decoded wholesale)
        store: Any = self.index if self.kind == "flat" else _faiss.downcast_index(self.index.storage)
        return store.search(xq, k, params=_faiss.SearchParameters(sel=_faiss.IDSelectorBitmap(sel.bitmap)))

    def _hnsw(self, xq: np.ndarray, k: int, sel: Selection) -> tuple[np.ndarray, np.ndarray]:
        share = sel.n_ok / max(self.ntotal, 1)
        ef = int(min(max(self.ef_search, 2 * k) / share, 2048))
        if sel.n_ok == self.ntotal:  # one parameter object per breadth, made once
            params = self._params.get(ef)
            if params is None:
                params = self._params[ef] = _faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = _faiss.SearchParametersHNSW(sel=_faiss.IDSelectorBitmap(sel.bitmap), efSearch=ef)
        d, p = self.index.search(xq, k, params=params)
        short = np.flatnonzero((p < 0).any(axis=1))
        if len(short):  # the graph walk ran out of allowed neighbours: answer exactly
            d[short], p[short] = self._exact(xq[short], k, sel)
        return d, p

    # -- persistence ----------------------------------------------------------------
    def save(self, root: Path, space: str, model: str, version_sum: int) -> Manifest:
        """Write a new generation under root and switch ``root/current`` to it atomically."""
        root.mkdir(parents=True, exist_ok=True)
        # named per process and thread: an ingest and a serving engine may save in one process at once
        me = f"{os.getpid()}-{threading.get_ident()}"
        gen = root / f"gen-{time.time_ns()}-{me}"
        tmp = gen.with_name(gen.name + ".tmp")
        tmp.mkdir()
        faiss.write_index(self.index, str(tmp / "index.faiss"))
        for name, arr in (("labels", self.labels), ("versions", self.versions), ("alive", self.alive)):
            np.save(tmp / f"{name}.npy", arr)
        if self.posts is not None:
            self.posts.save(tmp)
        if self.kind == "ivfpq":
            self.refine.save(tmp)
        sums = {f.name: sha256_file(f) for f in sorted(tmp.iterdir())}
        man = Manifest(
            space,
            model,
            self.dim,
            self.kind,
            self.n_alive,
            version_sum,
            time.time(),
            sums,
            self.codec,
            self.posts.dim if self.posts is not None else 0,
        )
        (tmp / "manifest.json").write_text(json.dumps(asdict(man), indent=1))
        fsync_dir(tmp)
        tmp.rename(gen)
        self.source = gen.resolve()
        link = root / f"current.{me}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(gen.name)
        os.replace(link, root / "current")
        fsync_dir(root)
        prune(root, keep=gen.name)
        return man

    @classmethod
    def load(
        cls, root: Path, generation: str | None = None, mapped: bool = False, paged: bool = False
    ) -> tuple[VectorIndex, Manifest]:
        """The index under ``root``: its ``current`` generation, or the one named (a folder of
        ``root``, as a publication names it). mapped: its per-post vectors and re-score vectors
        memory-mapped, not read (a serving engine, which never adds to it). paged (mapped
        only): the per-post vectors left out of the page cache after their checksum, and read
        as queries touch them (``CONGRUENCE_POST_VECTORS=paged``)."""
        cur = root / (generation or "current")
        try:
            gen = cur.resolve(strict=True)
            man = Manifest(**json.loads((gen / "manifest.json").read_text()))
            for name, digest in man.checksums.items():
                if sha256_file(gen / name, uncache=mapped and paged and name in POST_FILES_MAPPED) != digest:
                    raise IndexCorrupt(f"{gen / name} fails its checksum")
            self = cls.__new__(cls)
            self.index = faiss.read_index(str(gen / "index.faiss"))
            self.dim, self.kind, self.codec = man.dim, man.kind, man.codec
            self.labels = np.load(gen / "labels.npy")
            self.versions = np.load(gen / "versions.npy")
            self.alive = np.load(gen / "alive.npy")
            self.posts = PostMatrix.load(gen, man.post_dim, mapped, paged) if man.post_dim > 0 else None
            self._refine = [
                ivf.RefineVectors.load(gen, man.checksums, man.dim, mapped, paged)
                if man.kind == "ivfpq"
                else ivf.RefineVectors.empty(man.dim)
            ]
            self.refine_bits = self._refine[0].bits  # an index keeps the precision it was built with
            self.source = gen
            self._init_search()
        except IndexCorrupt:
            raise
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
            raise IndexCorrupt(f"cannot read the index under {root}: {e}") from None
        if not (len(self.labels) == len(self.versions) == len(self.alive) == self.ntotal) or (
            self.posts is not None and len(self.posts.count) != self.ntotal
        ):
            raise IndexCorrupt(f"index under {root} has inconsistent sizes")
        # the manifest holds the checksums, so nothing checksums it: check it against the files
        hnsw = isinstance(self.index, faiss.IndexHNSW)
        sq8 = hnsw and isinstance(_faiss.downcast_index(self.index.storage), faiss.IndexScalarQuantizer)
        ivfpq = isinstance(self.index, faiss.IndexIVFPQ)
        if (
            self.index.d != man.dim
            or hnsw != (man.kind == "hnsw")
            or ivfpq != (man.kind == "ivfpq")
            or (ivfpq and len(self.refine) != self.ntotal)
            or sq8 != (man.codec == "sq8")
            or man.count != self.n_alive
            or (self.posts is not None and self.posts.dim != man.post_dim)
        ):
            raise IndexCorrupt(f"index under {root} does not match its manifest (dim, kind, codec or count)")
        self._index_positions()
        return self, man
