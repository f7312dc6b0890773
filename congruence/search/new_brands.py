"""A brand not in the corpus, described by images and/or text: encoded once
(``describe_new``), or rebuilt from kept encoder outputs (``describe_encoded``, as a saved
search does for whichever head serves when it runs), in the space in service. A base of
``search.engine.Engine``, which gives it ``ids``, ``encoders``, ``current`` and
``match_query``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from congruence.core.errors import InvalidInput, ModelMismatch
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.encoders.inference import encode_images
from congruence.indexer.pool import pool
from congruence.search.feedback import Feedback
from congruence.search.filters import Filters
from congruence.search.rerank import describe_new_brand
from congruence.search.snapshot import Snapshot

if TYPE_CHECKING:
    from congruence.search.hits import Hit


@dataclass(frozen=True)
class BrandQuery:
    """A brand given by images and text rather than an id.

    vector: (d,) L2-normalised query in ``space``; posts: (P, d) per-post head projections
    when a head is in service (None in the pooled space). images, text: the encoder outputs it
    was built from (``Engine.describe_encoded``): (n, d_image) image embeddings and the
    (d_text,) text embedding (None: no text); images None when they were not kept.
    """

    vector: np.ndarray
    posts: np.ndarray | None
    space: str
    images: np.ndarray | None = None
    text: np.ndarray | None = None


class NewBrands:
    ids: ModelIds
    encoders: EncoderSet

    def current(self) -> Snapshot:
        raise NotImplementedError  # the engine's snapshot

    def match_query(
        self,
        query: BrandQuery,
        k: int = 20,
        filters: Filters = Filters(),
        posts: int = 0,
        feedback: Feedback = Feedback(),
    ) -> list[Hit]:
        raise NotImplementedError  # the engine's ranking

    def match_new(
        self,
        images: Sequence[Image.Image],
        text: str,
        k: int = 20,
        filters: Filters = Filters(),
        posts: int = 0,
        feedback: Feedback = Feedback(),
    ) -> list[Hit]:
        """Match a brand that is not in the corpus, described by images and/or text."""
        return self.match_query(self.describe_new(images, text), k, filters, posts, feedback)

    def describe_new(self, images: Sequence[Image.Image], text: str, snap: Snapshot | None = None) -> BrandQuery:
        """A brand not in the corpus, in the space in service now (encoded once, reusable)."""
        snap = snap or self.current()
        img, txt = self._encode_new(images, text)
        return self.describe_encoded(img, txt[0] if len(txt) else None, snap)

    def describe_encoded(self, images: np.ndarray, text: np.ndarray | None, snap: Snapshot | None = None) -> BrandQuery:
        """A brand not in the corpus from its encoder outputs (``_encode_new``'s: (n, d_image)
        image embeddings, the (d_text,) text embedding or None; L2-normalised), in the space of
        ``snap`` (the one in service by default): how ``describe_new`` ends, and how a saved
        search rebuilds its query for whichever head serves when it runs."""
        d_image, d_text = self.ids.d_image, self.ids.d_text
        img = np.asarray(images, np.float32)
        txt = None if text is None else np.asarray(text, np.float32)
        if img.ndim != 2 or img.shape[1] != d_image or (txt is not None and txt.shape != (d_text,)):
            got = f"{img.shape}" + ("" if txt is None else f" and {txt.shape}")
            raise ModelMismatch(
                f"expected (n, {d_image}) image and ({d_text},) text embeddings of this store's encoders, got {got}"
            )
        if not len(img) and txt is None:
            raise InvalidInput("describe the brand with at least one image or some text")
        snap = snap or self.current()
        if snap.head is None:
            rows = np.zeros((0, d_text), np.float32) if txt is None else txt[None, :]
            return BrandQuery(pool(img, rows, d_image, d_text), None, snap.space, img, txt)
        q, brand_posts = describe_new_brand(snap.head, img, txt, d_image, d_text)
        return BrandQuery(q, brand_posts, snap.space, img, txt)

    def brand_vector(self, images: Sequence[Image.Image], text: str) -> np.ndarray:
        """The untrained pooled vector of a brand described by images and/or text."""
        img, txt = self._encode_new(images, text)
        return pool(img, txt, self.ids.d_image, self.ids.d_text)

    def _encode_new(self, images: Sequence[Image.Image], text: str) -> tuple[np.ndarray, np.ndarray]:
        """(n_images, d_image) and (0 or 1, d_text) L2-normalised embeddings."""
        text = (text or "").strip()
        if not images and not text:
            raise InvalidInput("describe the brand with at least one image or some text")
        img = np.zeros((0, self.ids.d_image), np.float32)
        if images:
            img = encode_images(self.encoders.image, list(images))
        txt = self.encoders.text.encode([text]) if text else np.zeros((0, self.ids.d_text), np.float32)
        return img, txt
