"""Serving the engagement model: each image's expected success 0-10, a ranking, suggestions.

"Which will get more attention?": the images are scored by the engagement model in service
(``congruence engagement train``), ranked (1 = most expected attention), and each gets the
visual concepts associated with higher engagement in the training data that it lacks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.engagement.checkpoint import EngagementModel, require_active
from congruence.engagement.data import PostFeatures
from congruence.engagement.features import hand_features
from congruence.engagement.labels import z_to_score
from congruence.indexer.encoder_set import EncoderSet
from congruence.indexer.encoders import encode_images
from congruence.indexer.store import Store

MAX_IMAGES = 64


@dataclass(frozen=True)
class ImageScore:
    index: int  # position in the input
    score: float  # 0..10
    rank: int  # 1 = expected to get the most attention
    suggestions: tuple[str, ...]  # concepts associated with higher scores and absent/weak in this image

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "score": self.score, "rank": self.rank, "suggestions": list(self.suggestions)}


def suggestion_text(score: ImageScore) -> str:
    """'including *sea, swimwear* may help', or '' without suggestions."""
    return f"including *{', '.join(score.suggestions)}* may help" if score.suggestions else ""


def rank_scores(scores: Sequence[float]) -> list[int]:
    """1-based ranks, highest score first; equal scores keep input order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    ranks = [0] * len(scores)
    for r, i in enumerate(order, start=1):
        ranks[i] = r
    return ranks


class Scorer:
    """Loads the model and (lazily, once per process) the encoders; ``score`` is thread-safe."""

    def __init__(self, settings: Settings, model: EngagementModel):
        self.settings = settings
        self.model = model
        self.encoders = EncoderSet(settings)
        self._lock = threading.Lock()
        trained = model.metrics.get("trained_with", {})
        # a modality the model never saw in training has untrained input weights: leave it out
        self.uses_images = bool(trained.get("image", True))
        self.uses_captions = bool(trained.get("caption", True))

    @classmethod
    def load(cls, settings: Settings, store: Store) -> Scorer:
        """The scorer of the engagement model in service; NotFound when there is none."""
        return cls(settings, require_active(settings, store))

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def note(self) -> str:
        """Why scores or suggestions may say little, for people reading the output."""
        if not self.uses_images:
            return ("the engagement model was trained without images (text-only corpus): images do not change "
                    "the score and no visual suggestions are given")
        if not self.model.concepts.names:
            return "no visual concept was associated with higher engagement in the training data"
        return ""

    def _features(self, images: Sequence[Image.Image], captions: Sequence[str | None]) -> PostFeatures:
        n = len(images)
        d_image, d_text = self.model.net.d_image, self.model.net.d_text
        img = encode_images(self.encoders.image, list(images)) if self.uses_images else np.zeros((n, d_image), np.float32)
        text = np.zeros((n, d_text), np.float32)
        has_text = np.array([bool(c and c.strip()) for c in captions], bool) & self.uses_captions
        if has_text.any():
            text[has_text] = self.encoders.text.encode([c for c, h in zip(captions, has_text, strict=True) if h and c])
        zeros = np.zeros((n, d_text), np.float32)
        # a post being scored has no alt text, tags or paid-partnership flag yet: unknown, masked
        hand, hand_mask = hand_features([c if h else None for c, h in zip(captions, has_text, strict=True)],
                                        [None] * n, [None] * n, [None] * n)
        return PostFeatures(img, np.full(n, self.uses_images), text, has_text, zeros, np.zeros(n, bool),
                            np.full(n, np.nan), hand, hand_mask)

    def score(self, images: Sequence[Image.Image], captions: Sequence[str | None] | None = None) -> list[ImageScore]:
        """One ImageScore per image, in input order. ``captions``: one per image (None = none)."""
        if not images:
            raise InvalidInput("expected at least one image")
        if len(images) > MAX_IMAGES:
            raise InvalidInput(f"at most {MAX_IMAGES} images at once, got {len(images)}")
        caps: Sequence[str | None] = [None] * len(images) if captions is None else captions
        if len(caps) != len(images):
            raise InvalidInput(f"expected {len(images)} captions (one per image), got {len(caps)}")
        with self._lock:
            f = self._features(images, caps)
            z = self.model.net.predict(f)
        values = [round(float(s), 3) for s in z_to_score(z)]
        ranks = rank_scores(values)
        sugg = self.model.concepts.suggestions(f.image) if self.uses_images and self.model.concepts.names \
            else [()] * len(images)
        return [ImageScore(i, values[i], ranks[i], tuple(sugg[i])) for i in range(len(images))]
