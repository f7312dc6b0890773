"""ImageNet class probabilities of a post's image, from its stored embedding.

For EfficientNet-Lite0 (the default image encoder) the class logits are its own classifier's,
``W f + b`` on the pooled feature ``f``. The store keeps ``f`` L2-normalised, so the logits are
taken at ``FEATURE_NORM * f_hat``: the median norm of ``f`` on 40 real photos of
``../shared/data/photos`` (range 10.0-19.7); there the top class was the same as on the raw
features for all 40 and its probability within 0.06 on average. For an open_clip image
encoder the classes are zero-shot, CLIP's text embeddings of "a photo of a {class}" at CLIP's
logit scale of 100. Other encoders have no classes: their images are not screened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from congruence.core.vectors import l2_normalize

logger = logging.getLogger(__name__)
FEATURE_NORM = 14.4
CLIP_SCALE = 100.0


@dataclass(frozen=True)
class ImageClassifier:
    """names: the 1000 ImageNet classes; weight (c, d), bias (c,): the logits of an image
    are ``scale * weight @ f_hat + bias`` for its L2-normalised embedding ``f_hat``."""

    names: list[str]
    weight: np.ndarray
    bias: np.ndarray
    scale: float

    def probabilities(self, emb: np.ndarray) -> np.ndarray:
        """(n, c) float32 class probabilities of (n, d) image embeddings."""
        logits = self.scale * (l2_normalize(emb) @ self.weight.T) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def image_classifier(encoder_name: str, device: str = "cpu") -> ImageClassifier | None:
    """The ImageNet classifier of the image encoder, or None when it has none."""
    from congruence.encoders import torch_models
    from congruence.engagement.concepts import concept_bank, imagenet_labels

    if encoder_name == "efficientnet-lite0":
        fc = getattr(torch_models.image_encoder(encoder_name, device).model, "_fc")  # noqa: B009
        return ImageClassifier(
            imagenet_labels(),
            fc.weight.detach().float().cpu().numpy(),
            fc.bias.detach().float().cpu().numpy(),
            FEATURE_NORM,
        )
    if encoder_name.startswith("open_clip:"):
        bank = concept_bank(encoder_name, device)
        if bank is not None:
            return ImageClassifier(bank.names, bank.vectors, np.zeros(len(bank.names), np.float32), CLIP_SCALE)
    logger.info("image encoder %s has no ImageNet classes: images are not screened", encoder_name)
    return None
