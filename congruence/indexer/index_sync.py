"""Keeping the FAISS index of a space in step with PostgreSQL (the system of record)."""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from congruence.core.progress import current_board
from congruence.core.settings import Settings
from congruence.indexer.index import IndexCorrupt, Manifest, VectorIndex
from congruence.indexer.post_matrix import QuantizedPosts
from congruence.store.vectors import AccountChunk, Shard, VectorStore

logger = logging.getLogger(__name__)
REBUILD_DEAD_FRACTION = 0.3
PROGRESS_MIN = 10_000  # smaller builds take seconds: no progress lines for them
SHARED_SAMPLE = 50_000  # accounts the shards' shared 8-bit codebook is trained on (as one index's first batch)


@dataclass(frozen=True)
class IndexLayout:
    """How the index of a space is built: exact (flat) up to ``exact_threshold`` vectors,
    HNSW above, storing 8-bit codes instead of float32 above ``compress_threshold``;
    ``post_dim`` > 0 keeps each account's per-post vectors beside it (a head's space, for
    the rerank). A shard is IVF-PQ above ``ivf_threshold`` (0: never), its re-score vectors
    at ``refine_bits``."""

    exact_threshold: int = 5_000
    compress_threshold: int = 200_000
    post_dim: int = 0
    ivf_threshold: int = 0  # a shard's: IVF-PQ above this many vectors (0: never)
    refine_bits: int = 8  # an IVF-PQ shard's re-score vectors: 8 or 16 bits

    def shape_for(self, n: int, shard: bool = False) -> tuple[str, str]:
        """(kind, codec) of an index (of a shard) holding n vectors."""
        if shard and 0 < self.ivf_threshold < n:
            return "ivfpq", "pq"
        if n <= self.exact_threshold:
            return "flat", "float32"
        return "hnsw", "sq8" if n > self.compress_threshold else "float32"


@dataclass(frozen=True)
class SyncResult:
    """index: the index as synced (None when its manifest alone showed it current: nothing
    was loaded); folder: its generation folder on disk."""

    index: VectorIndex | None
    manifest: Manifest
    added: int
    removed: int
    rebuilt: bool
    reason: str
    folder: Path


def layout_for(settings: Settings, post_dim: int = 0) -> IndexLayout:
    return IndexLayout(
        settings.exact_threshold,
        settings.compress_threshold,
        post_dim,
        settings.shard_ivf_threshold,
        settings.shard_refine_bits,
    )


def space_dir(index_root: Path, space: str, shard: Shard | None = None) -> Path:
    """The folder of a space's index generations (of one shard's: ``shards/<n>/<space>/<i>``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", space)
    if shard is None:
        return index_root / name
    i, n = shard
    return index_root / "shards" / str(n) / name / str(i)


def is_stale(vstore: VectorStore, man: Manifest, space: str, model: str) -> str | None:
    """Why the index described by ``man`` no longer matches PostgreSQL, or None."""
    if man.model != model:
        return f"index was built for model {man.model!r}, the store uses {model!r}"
    seq, ver = vstore.vector_state(space, "influencer")
    if len(seq) != man.count or int(ver.sum()) != man.version_sum:
        return (
            f"index holds {man.count} vectors (version sum {man.version_sum}), the store {len(seq)} ({int(ver.sum())})"
        )
    return None


def sync_index(
    vstore: VectorStore,
    index_root: Path,
    space: str,
    model: str,
    layout: IndexLayout,
    force_rebuild: bool = False,
    shard: Shard | None = None,
) -> SyncResult:
    """Bring the on-disk index of ``space`` (of one shard's accounts) up to date, incrementally
    where possible: a shard none of whose accounts changed is left as it is."""
    root = space_dir(index_root, space, shard)
    seq, ver = vstore.vector_state(space, "influencer", shard)
    kind, codec = layout.shape_for(len(seq), shard is not None)
    dim = vstore.space_dim(space) if len(seq) else None
    index, man, reason = _load_reusable(root, model, (kind, codec, layout), dim, force_rebuild)
    if index is None or man is None:
        return _rebuild(vstore, root, space, model, layout, seq, ver, reason, shard)
    gone, changed = _difference(index, seq, ver)
    if index.n_dead + len(gone) + len(changed) > REBUILD_DEAD_FRACTION * max(len(seq), 1) and index.ntotal > 1000:
        return _rebuild(vstore, root, space, model, layout, seq, ver, "too many removed vectors", shard)
    quantized = kind == "ivfpq" and index.refine_bits > layout.refine_bits
    if quantized:  # float16 re-score vectors (a shard built before, or at 16 bits): seconds, no rebuild
        index.quantize_refine()
    index.remove(gone)
    if len(changed):
        for part in vstore.account_vector_chunks(space, "influencer", seqs=changed, with_posts=layout.post_dim > 0):
            _add(index, part, seq, ver)
    if len(gone) == 0 and len(changed) == 0 and not quantized:
        return SyncResult(index, man, 0, 0, False, "up to date", _folder(index))
    man = index.save(root, space, model, int(ver.sum()))
    reason = "re-score vectors quantised to 8 bits" if quantized else "incremental"
    return SyncResult(index, man, len(changed), len(gone), False, reason, _folder(index))


def _folder(index: VectorIndex) -> Path:
    assert index.source is not None, "an index synced is loaded or saved"
    return index.source


def _difference(index: VectorIndex, seq: np.ndarray, ver: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(seqs live in the index but not in the store, seqs of the store missing from the index
    or there with another version); ``seq`` sorted, as ``vector_state`` gives it. Arrays,
    not dicts: at 1M accounts two dicts of Python ints cost ~200 MB."""
    gone = np.setdiff1d(index.labels[index.alive], seq)
    pos = index.positions(seq)
    stale = pos < 0
    held = ~stale  # an index built empty has no versions to compare with
    stale[held] = index.versions[pos[held]] != ver[held]
    return gone.astype(np.int64), seq[stale]


def _add(
    index: VectorIndex, part: AccountChunk, seq: np.ndarray, ver: np.ndarray, quantized: QuantizedPosts | None = None
) -> int:
    """Add the rows of ``part`` with their versions from (sorted) ``seq``/``ver``; rows that
    appeared after ``seq`` was read are left for the next sync (their version is unknown).
    quantized: ``part``'s posts, quantised already (used when every row is added)."""
    at = np.minimum(np.searchsorted(seq, part.seq), max(len(seq) - 1, 0))
    ok = (seq[at] == part.seq) if len(seq) else np.zeros(len(part.seq), bool)
    rows = np.flatnonzero(ok)
    posts: list[np.ndarray | None] | QuantizedPosts | None = None
    if part.posts is not None:
        posts = quantized if quantized is not None and len(rows) == len(part.seq) else [part.posts[i] for i in rows]
    index.add(part.seq[rows], ver[at[rows]], part.vectors[rows], posts)
    return len(rows)


_END = object()


def _shared_sample(vstore: VectorStore, space: str, n: int = SHARED_SAMPLE) -> np.ndarray:
    """The vectors every shard's codes are trained on: the space's first accounts by seq,
    whichever shard holds them, so that each shard learns the same codebook."""
    first = next(vstore.account_vector_chunks(space, "influencer", chunk=n), None)
    assert first is not None, "a shard's index is built only from a space that has vectors"
    return first.vectors


def _shared_ivf(vstore: VectorStore, space: str) -> object:
    """The IVF-PQ quantiser and codebook every shard of ``space`` copies: trained on the same
    sample (the space's first accounts), so each shard's is the same and their scores compare;
    about 4 lists per square root of the space's accounts."""
    from congruence.indexer import ivf

    total = len(vstore.vector_state(space, "influencer")[0])
    nlist = int(min(65_536, max(16, 4 * np.sqrt(total))))
    sample = _shared_sample(vstore, space, max(SHARED_SAMPLE, 40 * nlist))
    return ivf.train_ivfpq(sample, min(nlist, max(1, len(sample) // 39)))


def _read_ahead(
    chunks: Iterator[AccountChunk], post_dim: int, depth: int = 2
) -> Iterator[tuple[AccountChunk, QuantizedPosts | None]]:
    """``chunks``, each with its posts quantised, read and quantised by a thread while the
    caller adds the previous ones to the graph (FAISS releases the GIL while it builds)."""
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            for part in chunks:
                put((part, QuantizedPosts.of(part.posts, post_dim) if part.posts is not None else None))
                if stop.is_set():
                    return
            put(_END)
        except BaseException as e:  # handed to the caller, raised there
            put(e)

    reader = threading.Thread(target=read, name="index build: read + quantise", daemon=True)
    reader.start()
    try:
        while (item := box.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


def _load_reusable(
    root: Path, model: str, shape: tuple[str, str, IndexLayout], dim: int | None, force: bool
) -> tuple[VectorIndex | None, Manifest | None, str]:
    """The saved index of ``root`` if it can be brought up to date in place, else why not
    (shape: the kind and codec it should have now, and the layout; ``dim``: the stored
    vectors' size, None when the space holds none)."""
    kind, codec, layout = shape
    post_dim = layout.post_dim
    if force:
        return None, None, "rebuild requested"
    try:
        index, man = VectorIndex.load(root)
    except IndexCorrupt as e:
        reason = "no index yet" if not (root / "current").exists() else str(e)
        return None, None, reason
    why = None
    if man.model != model:
        why = f"model changed from {man.model!r} to {model!r}"
    elif man.kind != kind:
        why = f"size crossed the exact-search threshold ({man.kind} -> {kind})"
    elif man.codec != codec:
        why = f"size crossed the compression threshold ({man.codec} -> {codec})"
    elif man.post_dim != post_dim:
        why = f"per-post vectors: {man.post_dim}-d stored, {post_dim}-d wanted"
    elif dim is not None and index.dim != dim:  # built while the space was empty, its size unknown
        why = f"index of {index.dim}-d vectors, the store holds {dim}-d"
    elif kind == "ivfpq" and index.refine_bits < layout.refine_bits:  # (16 to 8 is done in place)
        why = f"re-score vectors at {index.refine_bits} bits, {layout.refine_bits} wanted"
    return (None, None, why) if why else (index, man, "loaded")


def _rebuild(
    vstore: VectorStore,
    root: Path,
    space: str,
    model: str,
    layout: IndexLayout,
    seq: np.ndarray,
    ver: np.ndarray,
    reason: str,
    shard: Shard | None = None,
) -> SyncResult:
    """A new index from PostgreSQL, read in chunks so millions of accounts fit in memory; a
    thread reads and quantises the next chunks while the graph takes this one."""
    logger.info("rebuilding index %s: %s", space, reason)
    kind, codec = layout.shape_for(len(seq), shard is not None)
    index: VectorIndex | None = None
    added = 0
    board = current_board() if len(seq) >= PROGRESS_MIN else None
    name = space if shard is None else f"{space} shard {shard[0]}/{shard[1]}"
    progress = board.task(f"index:{name}", f"index build {name}", "accounts", len(seq)) if board else None
    reserve = vstore.post_count(space, "influencer", shard) if layout.post_dim > 0 else 0
    chunks = vstore.account_vector_chunks(space, "influencer", with_posts=layout.post_dim > 0, shard=shard)
    for part, quantized in _read_ahead(chunks, layout.post_dim):
        if index is None:
            template = _shared_ivf(vstore, space) if kind == "ivfpq" else None
            index = VectorIndex(part.vectors.shape[1], kind, codec, layout.post_dim, template, layout.refine_bits)
            if index.posts is not None:
                index.posts.reserve(reserve)
            if shard is not None and codec == "sq8":  # one codebook for every shard: scores compare
                index.index.train(_shared_sample(vstore, space))
        added += _add(index, part, seq, ver, quantized)
        if progress is not None:
            progress.update(len(part.seq))
    if progress is not None:
        progress.close()
    if index is None:
        index = VectorIndex(vstore.space_dim(space) or 1, kind, codec, layout.post_dim)
    man = index.save(root, space, model, int(ver.sum()))
    return SyncResult(index, man, added, 0, True, reason, _folder(index))
