"""Which encoder embeds when no gradient is needed, and embedding images with it.

On the CPU an encoder's ONNX Runtime twin (``onnx``) does the work when it has one: the same
vectors, several times faster. CUDA and the explanations (which need gradients) keep PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from congruence.core.device import resolve_device
from congruence.encoders import torch_models
from congruence.encoders.base import BatchImageEncoder, TextEncoder, encode_batch
from congruence.encoders.onnx import ort_image_encoder, ort_text_encoder


def encode_images(enc: BatchImageEncoder, images: Sequence[Image.Image], normalize: bool = True) -> np.ndarray:
    """(n, dim) float32 embeddings of RGB images; L2-normalised when ``normalize``.

    Inference only: on the CPU, a PyTorch encoder with an ONNX Runtime twin hands the work
    to the twin (same vectors, several times faster; new-brand uploads come this way)."""
    if not images:
        return np.zeros((0, enc.dim), np.float32)
    if enc.device.type == "cpu":
        enc = ort_image_encoder(enc.name) or enc
    x = torch.stack([enc.preprocess(im) for im in images]).to(enc.device)
    return encode_batch(enc, x, normalize)


def inference_image_encoder(name: str, device: str = "auto", runtime: str = "onnx") -> BatchImageEncoder:
    """The image encoder to embed with when no gradient is needed: its ONNX Runtime twin when
    the device resolves to the CPU, ``runtime`` is "onnx" and the encoder has one; else the
    PyTorch encoder (CUDA keeps PyTorch)."""
    if runtime == "onnx" and resolve_device(device).type == "cpu":
        fast = ort_image_encoder(name)
        if fast is not None:
            return fast
    return torch_models.image_encoder(name, device)


def inference_text_encoder(name: str, device: str = "auto", runtime: str = "onnx") -> TextEncoder:
    """As ``inference_image_encoder``, for text (every text encoder use is inference)."""
    if runtime == "onnx" and resolve_device(device).type == "cpu":
        fast = ort_text_encoder(name)
        if fast is not None:
            return fast
    return torch_models.text_encoder(name, device)
