"""What every encoder shares: the protocols callers type against, one lock per loaded model,
and the batch forward pass. Implementations: ``torch_models`` (PyTorch) and ``onnx`` (ONNX
Runtime twins on the CPU); ``inference`` picks between them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from congruence.core.vectors import l2_normalize


class BatchImageEncoder(Protocol):
    """What encoding without gradients needs (ingest, uploads, Ray): a PyTorch encoder, or
    its ONNX Runtime twin on the CPU (``inference_image_encoder``)."""

    name: str
    dim: int
    input_size: int
    device: torch.device

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """(3, H, W) float tensor for one RGB image."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim) raw (unnormalised) features of a preprocessed batch."""


class ImageEncoder(BatchImageEncoder, Protocol):
    """A PyTorch image encoder: ``features`` is differentiable (the explanations need it)."""

    model: torch.nn.Module

    def feature_layer(self) -> torch.nn.Module:
        """The last convolutional (or attention) layer, for Grad-CAM."""


class TextEncoder(Protocol):
    name: str
    dim: int
    device: torch.device

    def encode(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        """(n, dim) float32 embeddings; L2-normalised when ``normalize``."""


_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def model_lock(enc: object) -> threading.RLock:
    """The lock of one loaded encoder (encoders are shared process-wide by the caches below).

    Explanations hook into an encoder's layers (captum) while they run; a forward pass of
    another thread through the same module would feed those hooks, so passes take turns.
    """
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(id(enc), threading.RLock())


def encode_batch(enc: BatchImageEncoder, x: torch.Tensor, normalize: bool = True) -> np.ndarray:
    with model_lock(enc), torch.inference_mode():
        f = enc.features(x.to(enc.device, non_blocking=True)).float().cpu().numpy()
    return l2_normalize(f) if normalize else f.astype(np.float32)


def tflite_preprocess(img: Image.Image, size: int) -> torch.Tensor:
    """(3, size, size) float32: the image resized (bilinear, no crop), (x - 127) / 128."""
    img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return (a - 127.0) / 128.0
