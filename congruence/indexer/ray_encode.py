"""Ingest's encode stage on a Ray cluster: the pending images and captions, encoded by actors.

The driver (``ingest``) still validates, stores, pools and indexes; only the work list of
``encode``, the content that has no vector yet, goes to Ray, as rows of (content hash,
image path or caption). Each actor loads the store's encoder once (``EncoderSet``, the
driver's settings) and writes its vectors to PostgreSQL with ``VectorStore.put_vectors``,
a content-addressed upsert: a retried task rewrites nothing, and an interrupted ingest
resumes from what still has no vector, as the local path does.

A Ray Data pipeline per stage (images, then captions): ``map_batches`` over a fixed pool of
actors, one per GPU on a cluster with GPUs (each asking Ray for one) and CONGRUENCE_DEVICE
not cpu, else one per CPU; ``ray.cluster.run_pipeline`` runs it on the driver, or on the
cluster for a Ray Client (``ray://``) driver.

Workers open images by the absolute paths the driver stored (``posts.corpus_root``), so the
corpus folder must be at the same path on every node (shared storage): docs/scale-out.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from congruence.core.settings import Settings
from congruence.encoders.base import encode_batch
from congruence.encoders.encoder_set import EncoderSet
from congruence.indexer.encode import Progress, _load
from congruence.ray.actors import Actors
from congruence.ray.cluster import Batch, placement
from congruence.store.records import Store
from congruence.store.vectors import VectorStore

logger = logging.getLogger(__name__)
TEXT_BATCH = 64  # as encode_texts: captions are cheap, bigger batches


class _ImageActor:
    """Holds the image encoder and a store connection; encodes and stores one batch a call."""

    def __init__(self, settings: Settings, model_id: int):
        self.vstore = VectorStore(Store.open(settings))
        self.enc = EncoderSet(settings).image_infer  # ONNX Runtime on a CPU actor, PyTorch on a GPU
        self.model_id = model_id
        self.placement = placement(str(self.enc.device))

    def __call__(self, batch: Batch) -> Batch:
        hashes = [str(h) for h in batch["hash"]]
        loaded = [_load(self.enc, str(root), str(rel)) for root, rel in zip(batch["root"], batch["image"], strict=True)]
        ok = [(h, t) for h, t in zip(hashes, loaded, strict=True) if isinstance(t, torch.Tensor)]
        if ok:
            x = torch.stack([t for _, t in ok])
            if self.enc.device.type == "cuda":
                x = x.pin_memory()
            vecs = encode_batch(self.enc, x)
            self.vstore.put_vectors(self.model_id, [h for h, _ in ok], vecs, self.enc.dim)
        errors = [t if isinstance(t, str) else "" for t in loaded]
        return {
            "hash": np.array(hashes, dtype=object),
            "error": np.array(errors, dtype=object),
            "placement": np.array([self.placement] * len(hashes), dtype=object),
        }


class _TextActor:
    """Holds the text encoder and a store connection; encodes and stores one batch a call."""

    def __init__(self, settings: Settings, model_id: int):
        self.vstore = VectorStore(Store.open(settings))
        self.enc = EncoderSet(settings).text
        self.model_id = model_id
        self.placement = placement(str(self.enc.device))

    def __call__(self, batch: Batch) -> Batch:
        hashes = [str(h) for h in batch["hash"]]
        vecs = self.enc.encode([str(c) for c in batch["caption"]])
        self.vstore.put_vectors(self.model_id, hashes, vecs, self.enc.dim)
        return {
            "hash": np.array(hashes, dtype=object),
            "placement": np.array([self.placement] * len(hashes), dtype=object),
        }


@dataclass(frozen=True)
class RayEncoder:
    """Runs ``encode_images`` / ``encode_texts``'s work on a Ray cluster (same results), on a pool
    of encoder actors (``ray.actors.Actors``) that records where each stage ran."""

    pool: Actors

    @property
    def settings(self) -> Settings:
        return self.pool.settings

    def placements(self) -> dict[str, list[dict[str, Any]]]:
        """Per stage ('images', 'texts'), where its actors ran: node, pid, gpu_ids, device."""
        return {stage: self.pool.placements(stage) for stage in self.pool.seen}

    @classmethod
    def connect(cls, address: str, settings: Settings, actors: int | None = None) -> RayEncoder:
        """Connect to the cluster at ``address`` (see ``ray.cluster.connect``) and size the stage."""
        return cls(Actors.connect(address, settings, actors=actors))

    def images(
        self, vstore: VectorStore, model_id: int, progress: Progress | None = None
    ) -> tuple[int, list[tuple[str, str]]]:
        """As ``encode.encode_images``: (images encoded, [(image_hash, reason) of those that failed])."""
        todo = vstore.pending_images(model_id)
        rows = [{"hash": h, "root": root, "image": rel} for h, root, rel in todo]
        failed: list[tuple[str, str]] = []
        for out in self._run(rows, _ImageActor, self.settings.batch_size, model_id, "images", progress):
            failed += [(str(h), str(e)) for h, e in zip(out["hash"], out["error"], strict=True) if e]
        return len(todo) - len(failed), sorted(failed)  # in hash order, as the local path finds them

    def texts(self, vstore: VectorStore, model_id: int, progress: Progress | None = None) -> int:
        """As ``encode.encode_texts``: how many captions were encoded."""
        rows = [{"hash": h, "caption": c} for h, c in vstore.pending_texts(model_id)]
        for _ in self._run(rows, _TextActor, max(self.settings.batch_size, TEXT_BATCH), model_id, "texts", progress):
            pass
        return len(rows)

    def _run(
        self,
        rows: list[dict[str, Any]],
        actor: type,
        batch_size: int,
        model_id: int,
        stage: str,
        progress: Progress | None,
    ) -> Iterator[Batch]:
        """The actors' output batches, as they finish; reports progress per batch."""
        if not rows:
            return
        n_blocks = min(-(-len(rows) // batch_size), 10_000)  # about one batch a block: every actor gets work
        kwargs = {"settings": self.settings, "model_id": model_id}
        for out in self.pool.map(stage, rows, actor, kwargs, batch_size=batch_size, n_blocks=n_blocks):
            if progress:
                progress(stage, len(out["hash"]), len(rows))
            yield out
        logger.info("%s encoded on Ray by %s", stage, json.dumps(self.pool.placements(stage)))
