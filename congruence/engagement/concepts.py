"""Visual concepts associated with higher engagement, for "including *sea, swimwear* may help".

A concept is a direction in the image-embedding space: for EfficientNet-Lite0 the row of
its ImageNet classifier (the logit of class c is ``w_c · f + b_c`` on the pooled feature
``f``; on the stored L2-normalised features ``w_c · f̂`` ranks images by the class's
evidence, up to the image's feature norm), for an open_clip image encoder the CLIP text
embedding of "a photo of a {label}" (zero-shot). Labels are ImageNet's 1000 classes.

Association: the Pearson correlation, over training posts with an image, between a
concept's evidence and the engagement label. The top positive ones are kept with their
evidence mean and spread over those images, so serving can tell when a concept is weak.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from congruence.core.vectors import l2_normalize

logger = logging.getLogger(__name__)
WEAK_Z = 1.0  # evidence below mean + 1 sd over training images counts as absent or weak


@dataclass(frozen=True)
class ConceptBank:
    """names: c labels; vectors: (c, d_image) float32 directions (not necessarily unit)."""

    names: list[str]
    vectors: np.ndarray


@dataclass(frozen=True)
class Concepts:
    """The concepts kept for suggestions, best first.

    vectors: (k, d_image) float32; mean, std: (k,) evidence over training images;
    corr: (k,) correlation with the engagement label; n_images: images they were found on.
    """

    names: list[str]
    vectors: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    corr: np.ndarray
    n_images: int

    @classmethod
    def empty(cls, d_image: int) -> Concepts:
        z = np.zeros(0, np.float32)
        return cls([], np.zeros((0, d_image), np.float32), z, z, z, 0)

    def weak(self, image_emb: np.ndarray) -> np.ndarray:
        """(n, k) bool: concept k is absent or weak in image i (rows of L2-normalised embeddings)."""
        ev = np.asarray(image_emb, np.float32) @ self.vectors.T
        return (ev - self.mean) / np.maximum(self.std, 1e-6) < WEAK_Z

    def suggestions(self, image_emb: np.ndarray, k: int = 3) -> list[tuple[str, ...]]:
        """Per image, up to ``k`` positively associated concepts it lacks, best first."""
        weak = self.weak(image_emb)
        return [tuple(self.names[c] for c in np.flatnonzero(row)[:k]) for row in weak]


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names (torchvision's metadata; nothing is downloaded)."""
    from congruence.core.compat import ensure_torchvision

    ensure_torchvision()
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def concept_bank(image_encoder_name: str, device: str = "cpu") -> ConceptBank | None:
    """The concept directions of the image encoder, or None when it has no way to name any."""
    from congruence.indexer import encoders

    labels = imagenet_labels()
    if image_encoder_name == "efficientnet-lite0":
        enc = encoders.image_encoder(image_encoder_name, device)
        fc: torch.nn.Linear = getattr(enc.model, "_fc")  # noqa: B009 - the classifier of efficientnet_lite_pytorch
        w = fc.weight.detach().float().cpu().numpy()
        return ConceptBank(labels, np.ascontiguousarray(w, np.float32))
    if image_encoder_name.startswith("open_clip:"):
        text = encoders.text_encoder(image_encoder_name, device)  # the same CLIP model's text tower
        return ConceptBank(labels, text.encode([f"a photo of a {name}" for name in labels], normalize=True))
    logger.info("no concept names for image encoder %s: suggestions are off", image_encoder_name)
    return None


def associate(bank: ConceptBank, image_emb: np.ndarray, z: np.ndarray, top: int = 20,
              min_images: int = 10) -> Concepts:
    """The ``top`` concepts whose evidence correlates most positively with ``z``.

    image_emb: (n, d_image) embeddings of training posts with an image (L2-normalised here);
    z: (n,) their engagement labels. Fewer than ``min_images`` images: no concepts.
    """
    x = l2_normalize(np.asarray(image_emb, np.float32))
    if len(x) < min_images or float(np.std(z)) == 0.0:
        return Concepts.empty(bank.vectors.shape[1])
    ev = (x @ bank.vectors.T).astype(np.float64)
    evc = ev - ev.mean(0)
    zc = np.asarray(z, np.float64) - np.mean(z)
    sd = evc.std(0) * zc.std()
    corr = np.where(sd > 0, (evc * zc[:, None]).mean(0) / np.maximum(sd, 1e-12), 0.0)
    order = [c for c in np.argsort(-corr, kind="stable")[:top] if corr[c] > 0]
    return Concepts(
        names=[bank.names[c] for c in order],
        vectors=np.ascontiguousarray(bank.vectors[order], np.float32),
        mean=ev.mean(0)[order].astype(np.float32),
        std=ev.std(0)[order].astype(np.float32),
        corr=corr[order].astype(np.float32),
        n_images=len(x),
    )
