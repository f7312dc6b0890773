"""Serving the engagement model: each image's expected success 0-10, a ranking, suggestions.

"Which will get more attention?": the images are scored by the engagement model in service
(``congruence engagement train``), ranked (1 = most expected attention), and each gets the
concepts it lacks whose effect on engagement held up on held-out accounts, with that
evidence (``suggest``), or a sentence saying why there is none. ``ScoreBasis`` says what the
scores rest on: the corpus, how many accounts, the held-out pairwise accuracy.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.encoders.inference import encode_images
from congruence.engagement.candidates import image_brightness
from congruence.engagement.checkpoint import EngagementModel, require_active
from congruence.engagement.data import PostFeatures
from congruence.engagement.features import hand_features
from congruence.engagement.labels import REFERENCE, z_to_score
from congruence.engagement.suggest import Suggestion, label
from congruence.store.records import Store

MAX_IMAGES = 64


@dataclass(frozen=True)
class ImageScore:
    index: int  # position in the input
    score: float  # 0..10
    rank: int  # 1 = expected to get the most attention
    suggestions: tuple[Suggestion, ...] = ()  # qualified concepts this image lacks and could show
    suggestion_note: str = ""  # why there are no suggestions ('' when there are)

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "score": self.score,
            "rank": self.rank,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "suggestion_note": self.suggestion_note,
        }


def suggestion_text(score: ImageScore) -> str:
    """'including *people* may help: posts showing people score +0.60 (...)', or the sentence why not."""
    if not score.suggestions:
        return score.suggestion_note
    names = ", ".join(label(s.effect) for s in score.suggestions)
    return f"including *{names}* may help: " + "; ".join(s.text() for s in score.suggestions)


@dataclass(frozen=True)
class ScoreBasis:
    """What the scores rest on: the training corpus and the model's held-out pairwise accuracy."""

    corpus: str
    accounts: int
    posts: int
    held_out_accounts: int
    pairwise_accuracy: float | None
    pairs: int
    screened: int  # candidate concepts looked at on the training accounts
    tested: int  # those tested on held-out accounts
    qualified: tuple[str, ...]  # those whose effect held up

    @classmethod
    def of(cls, model: EngagementModel) -> ScoreBasis:
        b, acc = model.metrics.get("basis", {}), model.metrics.get("model", {})
        ev = model.suggestions.evidence
        return cls(
            str(b.get("corpus", "")),
            int(b.get("accounts", 0)),
            int(b.get("posts", 0)),
            int(b.get("held_out_accounts", 0)),
            acc.get("pairwise_accuracy"),
            int(acc.get("pairs", 0)),
            ev.screened,
            len(ev.effects),
            tuple(e.name for e in ev.qualified),
        )

    def sentence(self) -> str:
        where = f" (corpus {self.corpus})" if self.corpus else ""
        acc = (
            "an accuracy that could not be measured (no held-out pairs)"
            if self.pairwise_accuracy is None
            else f"{self.pairwise_accuracy:.1%} of {self.pairs:,} pairs"
        )
        return (
            f"Scores come from a model trained on {self.posts:,} posts of {self.accounts:,} accounts{where}. On "
            f"{self.held_out_accounts:,} accounts it never saw, it picks the more-liked of two posts of the same "
            f"account {acc}; for scale, Imagion's model gets {REFERENCE['imagion_model']:.1%}, an expert "
            f"{REFERENCE['expert']:.1%} and a coin 50%."
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "corpus": self.corpus,
            "accounts": self.accounts,
            "posts": self.posts,
            "held_out_accounts": self.held_out_accounts,
            "pairwise_accuracy": self.pairwise_accuracy,
            "pairs": self.pairs,
            "reference": dict(REFERENCE),
            "concepts_screened": self.screened,
            "concepts_tested": self.tested,
            "concepts_qualified": list(self.qualified),
            "sentence": self.sentence(),
        }


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
    def basis(self) -> ScoreBasis:
        return ScoreBasis.of(self.model)

    @property
    def note(self) -> str:
        """Why scores or suggestions may say little, for people reading the output."""
        if not self.uses_images:
            return (
                "the engagement model was trained without images (text-only corpus): images do not change "
                "the score and no visual suggestions are given"
            )
        return ""

    def _suggest(self, image_emb: np.ndarray, images: Sequence[Image.Image]) -> list[tuple[list[Suggestion], str]]:
        if not self.uses_images:
            return [([], self.note[0].upper() + self.note[1:] + ".")] * len(images)
        bright = np.array([image_brightness(im) for im in images], np.float64)
        return self.model.suggestions.for_images(image_emb, bright)

    def _features(self, images: Sequence[Image.Image], captions: Sequence[str | None]) -> PostFeatures:
        n = len(images)
        d_image, d_text = self.model.net.d_image, self.model.net.d_text
        img = (
            encode_images(self.encoders.image, list(images)) if self.uses_images else np.zeros((n, d_image), np.float32)
        )
        text = np.zeros((n, d_text), np.float32)
        has_text = np.array([bool(c and c.strip()) for c in captions], bool) & self.uses_captions
        if has_text.any():
            text[has_text] = self.encoders.text.encode([c for c, h in zip(captions, has_text, strict=True) if h and c])
        zeros = np.zeros((n, d_text), np.float32)
        # a post being scored has no alt text, tags or paid-partnership flag yet: unknown, masked
        hand, hand_mask = hand_features(
            [c if h else None for c, h in zip(captions, has_text, strict=True)], [None] * n, [None] * n, [None] * n
        )
        return PostFeatures(
            img,
            np.full(n, self.uses_images),
            text,
            has_text,
            zeros,
            np.zeros(n, bool),
            np.full(n, np.nan),
            hand,
            hand_mask,
        )

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
        sugg = self._suggest(f.image, images)
        return [ImageScore(i, values[i], ranks[i], tuple(sugg[i][0]), sugg[i][1]) for i in range(len(images))]
