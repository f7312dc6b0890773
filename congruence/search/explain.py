"""Heatmaps on demand: what in an image made it match a brand.

Results are cached on disk by (ranking model, brand vector version, image hash, caption,
method), so a retrained head or a changed brand never serves an old map. The heavy methods
take a cross-process lock and answer Busy instead of queueing behind each other.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from congruence.core.errors import Busy, InvalidInput, ModelMismatch, NotFound
from congruence.core.hashes import sha256_bytes
from congruence.encoders.base import ImageEncoder, model_lock
from congruence.encoders.images import read_image
from congruence.search.attribution import (
    ALGORITHM_VERSION,
    HEAVY,
    METHODS,
    BrandSide,
    attribute,
    resize_map,
    score_function,
)
from congruence.search.engine import BrandQuery, Engine

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    """heatmap: (height, width) float32 at the explained image's size, higher = raises the score."""

    heatmap: np.ndarray
    score: float
    method: str
    brand_id: str
    model: str
    image_hash: str
    post_id: str | None = None
    cached: bool = False


class Explainer:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.cache_dir = engine.settings.home / "cache" / "explain"

    # -- public -------------------------------------------------------------------------
    def explain_image(
        self,
        brand_id: str,
        image: Image.Image,
        image_hash: str,
        caption: str = "",
        method: str = "gradcam",
        post_id: str | None = None,
    ) -> Explanation:
        _check_method(method)
        brand, model, brand_version = self._brand_side(brand_id, caption)
        return self._explain(brand, model, brand_id, str(brand_version), image, image_hash, caption, method, post_id)

    def explain_post(self, brand_id: str, post_id: str, method: str = "gradcam") -> tuple[Explanation, Image.Image]:
        _check_method(method)
        image, digest, caption = self._post_image(post_id)
        return self.explain_image(brand_id, image, digest, caption, method, post_id), image

    def explain_post_for_query(
        self, query: BrandQuery, query_id: str, post_id: str, method: str = "gradcam"
    ) -> tuple[Explanation, Image.Image]:
        """A post explained against a brand that is not in the corpus (a match by images and text)."""
        _check_method(method)
        snap = self.engine.current()
        if query.space != snap.space:
            raise ModelMismatch("the model changed since this search: search again to explain its results")
        image, digest, caption = self._post_image(post_id)
        cap = self._caption_vector(caption)
        side = (
            BrandSide(cap, head=snap.head, posts=query.posts)
            if snap.head is not None
            else BrandSide(cap, pooled=query.vector)
        )
        exp = self._explain(side, snap.model, f"query:{query_id}", "0", image, digest, caption, method, post_id)
        return exp, image

    def _explain(
        self,
        brand: BrandSide,
        model: str,
        brand_key: str,
        version: str,
        image: Image.Image,
        image_hash: str,
        caption: str,
        method: str,
        post_id: str | None,
    ) -> Explanation:
        key = self._key(model, brand_key, version, image_hash, caption, method)
        hit = self._cached(key)
        if hit is not None:
            heat, score = hit
            return Explanation(heat, score, method, brand_key, model, image_hash, post_id, cached=True)
        enc = self.engine.encoders.image
        with self._slot(method), model_lock(enc):
            heat, score = self._compute(enc, brand, image, method)
        self._store(key, heat, score)
        return Explanation(heat, score, method, brand_key, model, image_hash, post_id)

    def _post_image(self, post_id: str) -> tuple[Image.Image, str, str]:
        with self.engine.reading() as store:
            post = store.post(post_id)
        if not post.image:
            raise InvalidInput(f"post {post_id!r} has no image to explain")
        path = Path(post.corpus_root) / post.image
        if not path.is_file():
            raise NotFound(f"post {post_id!r}: image file not found at {path}")
        image, digest = read_image(path)
        return image, digest, post.caption or ""

    def top_posts(self, brand_id: str, influencer_id: str, n: int = 3) -> list[tuple[str, float]]:
        """(post id, score) of the influencer's n image posts that match the brand best."""
        engine = self.engine
        with engine.reading() as store:
            store.require_kind(influencer_id, "influencer")
        snap = engine.current()
        brand, _, _ = self._brand_side(brand_id, "")
        vecs = engine.per_post_vectors(snap, [influencer_id]).get(influencer_id)
        with engine.reading() as store:
            pids = store.post_ids_by_account([influencer_id]).get(influencer_id, [])
            with_image = store.posts_with_images(pids)
        if vecs is None or len(vecs) != len(pids):
            raise InvalidInput(f"influencer {influencer_id!r} has no embedded posts to explain")
        if brand.head is not None and brand.posts is not None:
            scores = np.asarray([brand.head.score_candidates(brand.posts, [v[None, :]])[0] for v in vecs])
        else:
            scores = vecs @ engine.entry(snap, brand_id, "brand").vector
        order = [int(i) for i in np.argsort(-scores, kind="stable") if pids[int(i)] in with_image]
        return [(pids[i], float(scores[i])) for i in order[:n]]

    # -- internals ----------------------------------------------------------------------
    def _brand_side(self, brand_id: str, caption: str) -> tuple[BrandSide, str, int]:
        engine, snap = self.engine, self.engine.current()
        with engine.reading() as store:
            store.require_kind(brand_id, "brand")
        cap = self._caption_vector(caption)
        try:
            entry = engine.entry(snap, brand_id, "brand")
        except InvalidInput:
            raise InvalidInput(f"brand {brand_id!r} has no embedded posts to explain against") from None
        version = int(engine.reader.versions(snap.space, [brand_id]).get(brand_id, 0))
        if snap.head is not None:
            if entry.posts is None:
                raise InvalidInput(f"brand {brand_id!r} has no per-post vectors in {snap.space!r} to explain against")
            return BrandSide(cap, head=snap.head, posts=entry.posts), snap.model, version
        return BrandSide(cap, pooled=entry.vector), snap.model, version

    def _caption_vector(self, caption: str) -> np.ndarray:
        engine = self.engine
        return engine.encoders.text.encode([caption])[0] if caption.strip() else np.zeros(engine.ids.d_text, np.float32)

    def _compute(
        self, enc: ImageEncoder, brand: BrandSide, image: Image.Image, method: str
    ) -> tuple[np.ndarray, float]:
        prep = getattr(enc, "preprocess_keep_aspect", enc.preprocess)
        x = prep(image.convert("RGB"))[None].to(enc.device)
        fn = score_function(enc.features, brand)
        with torch.no_grad():
            score = float(fn(x)[0])
        heat = attribute(fn, x, method, enc.feature_layer())
        return resize_map(heat, image.height, image.width), score

    def _key(self, model: str, brand_id: str, version: str, image_hash: str, caption: str, method: str) -> str:
        parts = [
            model,
            brand_id,
            version,
            image_hash,
            sha256_bytes(caption.encode()),
            method,
            self.engine.settings.image_encoder,
            ALGORITHM_VERSION,
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def _cached(self, key: str) -> tuple[np.ndarray, float] | None:
        path = self.cache_dir / f"{key}.npz"
        try:
            with np.load(path) as z:
                return z["heatmap"].astype(np.float32), float(z["score"])
        except (OSError, KeyError, ValueError):
            return None

    def _store(self, key: str, heat: np.ndarray, score: float) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f"{key}.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, heatmap=heat.astype(np.float32), score=np.float32(score))
        tmp.replace(self.cache_dir / f"{key}.npz")

    @contextmanager
    def _slot(self, method: str) -> Iterator[None]:
        """One heavy explanation at a time across processes; Busy for the next one."""
        if method not in HEAVY:
            yield
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / "heavy.lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise Busy(
                        f"another slow explanation ({', '.join(sorted(HEAVY))}) is running; "
                        "try again shortly, or use --method gradcam"
                    ) from None
                raise
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InvalidInput(f"must be one of {', '.join(METHODS)}, got {method!r}", field="method")
