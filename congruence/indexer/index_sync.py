"""Keeping the FAISS index of a space in step with PostgreSQL (the system of record)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from congruence.indexer.index import IndexCorrupt, Manifest, VectorIndex
from congruence.indexer.vector_store import VectorStore

logger = logging.getLogger(__name__)
REBUILD_DEAD_FRACTION = 0.3


@dataclass(frozen=True)
class SyncResult:
    index: VectorIndex
    manifest: Manifest
    added: int
    removed: int
    rebuilt: bool
    reason: str


def space_dir(index_root: Path, space: str) -> Path:
    return index_root / re.sub(r"[^A-Za-z0-9_.-]", "_", space)


def is_stale(vstore: VectorStore, man: Manifest, space: str, model: str) -> str | None:
    """Why the index described by ``man`` no longer matches PostgreSQL, or None."""
    if man.model != model:
        return f"index was built for model {man.model!r}, the store uses {model!r}"
    seq, ver = vstore.vector_state(space, "influencer")
    if len(seq) != man.count or int(ver.sum()) != man.version_sum:
        return f"index holds {man.count} vectors (version sum {man.version_sum}), the store {len(seq)} ({int(ver.sum())})"
    return None


def sync_index(vstore: VectorStore, index_root: Path, space: str, model: str, exact_threshold: int,
               force_rebuild: bool = False) -> SyncResult:
    """Bring the on-disk index of ``space`` up to date, incrementally where possible."""
    root = space_dir(index_root, space)
    seq, ver = vstore.vector_state(space, "influencer")
    want_kind = "flat" if len(seq) <= exact_threshold else "hnsw"
    index, reason = _load_reusable(root, model, want_kind, force_rebuild)
    if index is None:
        return _rebuild(vstore, root, space, model, want_kind, seq, ver, reason)
    have = index.live_versions()
    want = dict(zip(seq.tolist(), ver.tolist(), strict=True))
    gone = np.array([s for s in have if s not in want], np.int64)
    changed = np.array([s for s, v in want.items() if have.get(s) != v], np.int64)
    if index.n_dead + len(gone) + len(changed) > REBUILD_DEAD_FRACTION * max(len(want), 1) and index.ntotal > 1000:
        return _rebuild(vstore, root, space, model, want_kind, seq, ver, "too many removed vectors")
    index.remove(gone)
    if len(changed):
        got_seq, _, vecs = vstore.account_vectors(space, seqs=changed)
        index.add(got_seq, np.array([want[int(s)] for s in got_seq], np.int64), vecs)
    if len(gone) == 0 and len(changed) == 0:
        man = _manifest_of(root)
        return SyncResult(index, man, 0, 0, False, "up to date")
    man = index.save(root, space, model, int(ver.sum()))
    return SyncResult(index, man, len(changed), len(gone), False, "incremental")


def _load_reusable(root: Path, model: str, kind: str, force: bool) -> tuple[VectorIndex | None, str]:
    if force:
        return None, "rebuild requested"
    try:
        index, man = VectorIndex.load(root)
    except IndexCorrupt as e:
        reason = "no index yet" if not (root / "current").exists() else str(e)
        return None, reason
    if man.model != model:
        return None, f"model changed from {man.model!r} to {model!r}"
    if man.kind != kind:
        return None, f"size crossed the exact-search threshold ({man.kind} -> {kind})"
    return index, "loaded"


def _manifest_of(root: Path) -> Manifest:
    return VectorIndex.load(root)[1]


def _rebuild(vstore: VectorStore, root: Path, space: str, model: str, kind: str, seq: np.ndarray,
             ver: np.ndarray, reason: str) -> SyncResult:
    logger.info("rebuilding index %s: %s", space, reason)
    got_seq, _, vecs = vstore.account_vectors(space, kind="influencer")
    dim = vecs.shape[1] if len(vecs) else (vstore.space_dim(space) or 1)
    index = VectorIndex(dim, kind)
    if len(got_seq):
        vmap = dict(zip(seq.tolist(), ver.tolist(), strict=True))
        index.add(got_seq, np.array([vmap[int(s)] for s in got_seq], np.int64), vecs)
    man = index.save(root, space, model, int(ver.sum()))
    return SyncResult(index, man, len(got_seq), 0, True, reason)
