"""The query engine: brand → influencers, influencer → similar influencers.

Opens the store, makes sure the FAISS index matches PostgreSQL (rebuilding it when it is
missing, corrupt or stale: a stale index is never served silently), then answers queries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from congruence.core.errors import InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.indexer.encode import encode_batch
from congruence.indexer.encoder_set import EncoderSet, ModelIds
from congruence.indexer.index import VectorIndex
from congruence.indexer.index_sync import SyncResult, is_stale, sync_index
from congruence.indexer.pool import pool, pool_features
from congruence.indexer.store import AccountTable, Store
from congruence.indexer.vector_store import VectorStore
from congruence.search.filters import Filters
from congruence.search.hits import Hit, PostRef

logger = logging.getLogger(__name__)
MAX_K = 1000


@dataclass(frozen=True)
class Snapshot:
    """One consistent version of what queries read: swapped whole, never mutated."""

    index: VectorIndex
    table: AccountTable
    row_of_seq: dict[int, int]
    model: str
    space: str


class Engine:
    def __init__(self, settings: Settings, store: Store | None = None):
        self.settings = settings
        self.store = store or Store.open(settings)
        self.vstore = VectorStore(self.store)
        self.encoders = EncoderSet(settings)
        self.ids: ModelIds = self.encoders.model_ids(self.store)
        self._lock = threading.RLock()
        self.snapshot = self._load()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, force: bool = False) -> Snapshot:
        res: SyncResult = sync_index(self.vstore, self.settings.index_dir, self.ids.pooled_space,
                                     self.ids.pooled_model, self.settings.exact_threshold, force_rebuild=force)
        if res.rebuilt:
            logger.info("index rebuilt from PostgreSQL: %s", res.reason)
        table = self.store.account_table("influencer")
        rows = {int(s): i for i, s in enumerate(table.seq)}
        return Snapshot(res.index, table, rows, res.manifest.model, self.ids.pooled_space)

    def refresh(self) -> None:
        """Re-read PostgreSQL and swap in an up-to-date snapshot."""
        with self._lock:
            self.snapshot = self._load()

    # -- queries ----------------------------------------------------------------------
    def match_brand(self, brand_id: str, k: int = 20, filters: Filters = Filters(), posts: int = 0) -> list[Hit]:
        with self._lock:
            self.store.require_kind(brand_id, "brand")
            q = self._account_vector(brand_id, "brand")
        return self._search(q, k, filters, posts=posts)

    def match_new(self, images: Sequence[Image.Image], text: str, k: int = 20, filters: Filters = Filters(),
                  posts: int = 0) -> list[Hit]:
        """Match a brand that is not in the corpus, described by images and/or text."""
        q = self.brand_vector(images, text)
        return self._search(q, k, filters, posts=posts)

    def similar(self, influencer_id: str, k: int = 20, filters: Filters = Filters(), posts: int = 0) -> list[Hit]:
        with self._lock:
            self.store.require_kind(influencer_id, "influencer")
            q = self._account_vector(influencer_id, "influencer")
            seq = self.store.conn.execute("SELECT seq FROM accounts WHERE id = %s", (influencer_id,)).fetchone()
        exclude = np.array([seq[0]], np.int64) if seq else None
        return self._search(q, k, filters, exclude=exclude, posts=posts)

    def brand_vector(self, images: Sequence[Image.Image], text: str) -> np.ndarray:
        text = (text or "").strip()
        if not images and not text:
            raise InvalidInput("describe the brand with at least one image or some text")
        img = np.zeros((0, self.ids.d_image), np.float32)
        if images:
            enc = self.encoders.image
            import torch

            img = encode_batch(enc, torch.stack([enc.preprocess(im) for im in images]))
        txt = self.encoders.text.encode([text]) if text else np.zeros((0, self.ids.d_text), np.float32)
        return pool(img, txt, self.ids.d_image, self.ids.d_text)

    def _account_vector(self, account_id: str, kind: str) -> np.ndarray:
        _, _, vecs = self.vstore.account_vectors(self.ids.pooled_space, ids=[account_id])
        if len(vecs) == 0:
            raise InvalidInput(f"{kind} {account_id!r} has no embedded posts to match on")
        return vecs[0]

    def _search(self, q: np.ndarray, k: int, filters: Filters, exclude: np.ndarray | None = None,
                posts: int = 0) -> list[Hit]:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
        snap = self.snapshot
        mask = filters.mask(snap.table, snap.index, exclude)
        D, L = snap.index.search(q[None, :], k, allowed=mask)
        hits = []
        for score, seq in zip(D[0], L[0], strict=True):
            if seq < 0:
                break
            r = snap.row_of_seq[int(seq)]
            fol = int(snap.table.followers[r])
            hits.append(Hit(snap.table.ids[r], snap.table.handles[r], snap.table.categories[r],
                            fol if fol >= 0 else None, float(score), len(hits) + 1))
        return self._with_posts(hits, q, posts) if posts else hits

    def _with_posts(self, hits: list[Hit], q: np.ndarray, n: int) -> list[Hit]:
        """Attach each influencer's n posts closest to the query (in the pooled space)."""
        ids = self.ids
        sets = self.vstore.post_sets(ids.image, ids.text, ids.d_image, ids.d_text, account_ids=[h.influencer_id for h in hits])
        where = sets.index_of()
        out = []
        for h in hits:
            i = where.get(h.influencer_id)
            if i is None:
                out.append(h)
                continue
            feats = sets.posts_of(i)
            per_post = np.stack([pool_features(f[None, :], ids.d_image) for f in feats]) @ q
            order = np.argsort(-per_post, kind="stable")[:n]
            pids = sets.post_ids[int(sets.offsets[i]) :]
            refs = tuple(PostRef(pids[j], float(per_post[j])) for j in order)
            out.append(Hit(**{**h.__dict__, "top_posts": refs}))
        return out

    # -- status -------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        snap = self.snapshot
        counts = self.store.counts()
        man_stale = is_stale(self.vstore, _manifest(snap), snap.space, self.ids.pooled_model)
        return {
            **counts,
            "embedded_posts": self.vstore.count_embedded_posts(self.ids.image, self.ids.text),
            "models": {"image": self.ids.image_name, "text": self.ids.text_name, "head": None},
            "ranking": "untrained: cosine similarity of pooled embeddings (no congruence head trained yet)",
            "index": {"size": snap.index.n_alive, "kind": snap.index.kind, "model": snap.model,
                      "space": snap.space, "dim": snap.index.dim, "stale": man_stale is not None,
                      "stale_reason": man_stale},
        }


def _manifest(snap: Snapshot):  # type: ignore[no-untyped-def]
    from congruence.indexer.index import Manifest

    seq_ver = snap.index.live_versions()
    return Manifest(snap.space, snap.model, snap.index.dim, snap.index.kind, len(seq_ver),
                    int(sum(seq_ver.values())), 0.0, {})

