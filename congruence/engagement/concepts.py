"""What an image shows, as ImageNet concepts: the candidates for "posts showing *X* score higher".

A concept is a direction in the image-embedding space: for EfficientNet-Lite0 the row of
its ImageNet classifier (the logit of class c is ``w_c · f + b_c`` on the pooled feature
``f``; on the stored L2-normalised features ``w_c · f̂`` ranks the classes of one image as
its logits do, but for the small biases: the same top 5 on 4.95 of 5 real photos), for an
open_clip image encoder the CLIP text embedding of "a photo of a {label}" (zero-shot).
Labels are ImageNet's 1000 classes. An image *shows* a concept when the concept is among
its ``TOP_K`` strongest, the classifier's own top-5.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from congruence.core.vectors import l2_normalize

logger = logging.getLogger(__name__)
TOP_K = 5


@dataclass(frozen=True)
class ConceptBank:
    """names: c labels; vectors: (c, d_image) float32 directions (not necessarily unit)."""

    names: list[str]
    vectors: np.ndarray

    def shown(self, image_emb: np.ndarray, k: int = TOP_K) -> np.ndarray:
        """(n, k) int: the ``k`` concepts each image shows most, strongest first (rows of embeddings)."""
        ev = l2_normalize(np.asarray(image_emb, np.float32)) @ self.vectors.T
        top = np.argpartition(-ev, min(k, ev.shape[1] - 1), axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(ev, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)

    def presence(self, image_emb: np.ndarray, k: int = TOP_K) -> np.ndarray:
        """(n, c) bool: image i shows concept c (one of its ``k`` strongest)."""
        out = np.zeros((len(image_emb), len(self.names)), bool)
        np.put_along_axis(out, self.shown(image_emb, k), True, axis=1)
        return out


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names (torchvision's metadata; nothing is downloaded)."""
    from congruence.core.compat import ensure_torchvision

    ensure_torchvision()
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def concept_bank(image_encoder_name: str, device: str = "cpu") -> ConceptBank | None:
    """The concept directions of the image encoder, or None when it has no way to name any."""
    from congruence.encoders import torch_models

    labels = imagenet_labels()
    if image_encoder_name == "efficientnet-lite0":
        enc = torch_models.image_encoder(image_encoder_name, device)
        fc: torch.nn.Linear = getattr(enc.model, "_fc")  # noqa: B009 - the classifier of efficientnet_lite_pytorch
        w = fc.weight.detach().float().cpu().numpy()
        return ConceptBank(labels, np.ascontiguousarray(w, np.float32))
    if image_encoder_name.startswith("open_clip:"):
        text = torch_models.text_encoder(image_encoder_name, device)  # the same CLIP model's text tower
        return ConceptBank(labels, text.encode([f"a photo of a {name}" for name in labels], normalize=True))
    logger.info("no concept names for image encoder %s: suggestions are off", image_encoder_name)
    return None
