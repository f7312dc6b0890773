"""Encoding stage: embed every stored image and caption that has no vector yet.

Resumable by construction: each batch is committed as it is done, and the work list is
"what has no vector", so a rerun after an interruption does only what is missing.
Decoding runs in a thread pool one batch ahead of the forward pass. Captions are encoded
shortest first, so each batch pads to a length close to its own texts'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from congruence.core.errors import InvalidInput
from congruence.encoders.base import BatchImageEncoder, TextEncoder, encode_batch
from congruence.encoders.images import read_image
from congruence.store.vectors import VectorStore

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, items just done, items in the stage)


@dataclass(frozen=True)
class EncodeResult:
    images: int
    texts: int
    failed: list[tuple[str, str]]  # (image_hash, reason)


def _load(enc: BatchImageEncoder, root: str, rel: str) -> torch.Tensor | str:
    try:
        img, _ = read_image(Path(root) / rel, draft_size=enc.input_size * 2)
        return enc.preprocess(img)
    except (InvalidInput, OSError) as e:
        return str(e)


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def encode_images(
    vstore: VectorStore,
    enc: BatchImageEncoder,
    model_id: int,
    batch_size: int,
    progress: Progress | None = None,
    workers: int = 2,
) -> tuple[int, list[tuple[str, str]]]:
    todo = vstore.pending_images(model_id)
    failed: list[tuple[str, str]] = []
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def submit(batch: Sequence) -> list:
            return [pool.submit(_load, enc, root, rel) for _, root, rel in batch]

        batches = list(_batches(todo, batch_size))
        ahead = submit(batches[0]) if batches else []
        for bi, batch in enumerate(batches):
            loaded = [f.result() for f in ahead]
            ahead = submit(batches[bi + 1]) if bi + 1 < len(batches) else []
            ok = [(h, t) for (h, _, _), t in zip(batch, loaded, strict=True) if isinstance(t, torch.Tensor)]
            failed += [(h, t) for (h, _, _), t in zip(batch, loaded, strict=True) if isinstance(t, str)]
            if ok:
                x = torch.stack([t for _, t in ok])
                if x.device.type == "cpu" and enc.device.type == "cuda":
                    x = x.pin_memory()
                vecs = encode_batch(enc, x)
                vstore.put_vectors(model_id, [h for h, _ in ok], vecs, enc.dim)
            done += len(batch)
            if progress:
                progress("images", len(batch), len(todo))
    return done - len(failed), failed


def encode_texts(
    vstore: VectorStore, enc: TextEncoder, model_id: int, batch_size: int, progress: Progress | None = None
) -> int:
    todo = sorted(vstore.pending_texts(model_id), key=lambda row: len(row[1]))
    for batch in _batches(todo, max(batch_size, 64)):
        vecs = enc.encode([c for _, c in batch])
        vstore.put_vectors(model_id, [h for h, _ in batch], vecs, enc.dim)
        if progress:
            progress("texts", len(batch), len(todo))
    return len(todo)
