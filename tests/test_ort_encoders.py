"""ONNX Runtime encoders on the CPU: the same vectors as PyTorch, from a graph cached by weights and settings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from congruence.encoders import inference, onnx, torch_models
from congruence.encoders.base import encode_batch
from congruence.encoders.images import read_image
from congruence.encoders.inference import encode_images
from congruence.encoders.onnx import OrtImageEncoder, OrtTextEncoder, ort_image_encoder, ort_text_encoder
from congruence.encoders.onnx_cache import ExportSpec, cached_graph
from congruence.encoders.torch_models import image_encoder, text_encoder
from tests.conftest import PHOTOS, SHARED, requires_photos

POSTS = SHARED / "instagram" / "posts.jsonl.gz"


def _photos(n: int) -> list[Path]:
    rows = (PHOTOS / "labels.csv").read_text().splitlines()[1:]
    return [PHOTOS / r.split(",")[0] for r in rows[:: max(1, len(rows) // n)][:n]]


@requires_photos()
def test_ort_image_features_agree_with_pytorch_on_real_photos() -> None:
    torch_enc, fast = image_encoder("efficientnet-lite0", "cpu"), ort_image_encoder("efficientnet-lite0")
    assert isinstance(fast, OrtImageEncoder)
    # decoded as ingest decodes them (JPEG draft at twice the input size)
    x = torch.stack([torch_enc.preprocess(read_image(p, draft_size=448)[0]) for p in _photos(24)])
    want, got = encode_batch(torch_enc, x), encode_batch(fast, x)
    cos = (want * got).sum(axis=1)
    assert cos.min() >= 0.9999, cos.min()


@pytest.mark.skipif(not POSTS.exists(), reason=f"real captions not found at {POSTS} (../shared/data/instagram)")
def test_ort_text_vectors_agree_with_sentence_transformers_on_real_captions() -> None:
    captions: list[str] = []
    with gzip.open(POSTS, "rt", encoding="utf-8") as f:
        for line in f:
            if (c := json.loads(line).get("caption") or "").strip():
                captions.append(c)
            if len(captions) == 150:
                break
    want = text_encoder("minilm-l6", "cpu").encode(captions)
    fast = ort_text_encoder("minilm-l6")
    assert isinstance(fast, OrtTextEncoder)
    got = fast.encode(captions)
    assert got.shape == (len(captions), 384)
    cos = (want * got).sum(axis=1)
    assert cos.min() >= 0.9999, cos.min()


def test_inference_encoders_are_onnx_on_the_cpu_and_pytorch_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(inference.inference_image_encoder("efficientnet-lite0", "cpu"), OrtImageEncoder)
    assert isinstance(inference.inference_text_encoder("minilm-l6", "cpu"), OrtTextEncoder)
    torch_enc = inference.inference_image_encoder("efficientnet-lite0", "cpu", runtime="torch")
    assert isinstance(torch_enc, torch_models.EfficientNetLite0)
    # a CUDA device keeps PyTorch (the lent GPU runs are the only place this path really runs)
    monkeypatch.setattr(inference, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch_models, "image_encoder", lambda name, device="auto": ("torch", name, device))
    assert inference.inference_image_encoder("efficientnet-lite0", "cuda") == ("torch", "efficientnet-lite0", "cuda")


def test_new_brand_images_are_encoded_by_the_onnx_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    calls: list[int] = []
    run = OrtImageEncoder.features
    monkeypatch.setattr(OrtImageEncoder, "features", lambda self, x: (calls.append(len(x)), run(self, x))[1])
    enc = image_encoder("efficientnet-lite0", "cpu")  # what the engine and the explanations hold
    images = [Image.new("RGB", (80, 60), (200, 40, 40)), Image.new("RGB", (60, 80), (30, 30, 220))]
    v = encode_images(enc, images)
    assert calls == [2] and v.shape == (2, 1280)
    with torch.inference_mode():
        want = torch_models.l2_normalize(enc.features(torch.stack([enc.preprocess(i) for i in images])).numpy())
    np.testing.assert_allclose(v, want, atol=1e-4)


# -- the cache: keyed by weights and export settings, rebuilt when stale ----------------------
def _linear_export(weights: Path, counter: list[int]):  # type: ignore[no-untyped-def]
    def export(path: Path) -> None:
        counter.append(1)
        lin = torch.nn.Linear(4, 2)
        lin.load_state_dict(torch.load(weights))
        onnx._export(lin, (torch.zeros(1, 4),), path, (["x"], ["y"]), {"x": {0: "b"}, "y": {0: "b"}})

    return export


def test_graph_cache_is_keyed_by_weights_and_settings_and_rebuilt_when_stale(tmp_path: Path) -> None:
    weights, cache = tmp_path / "w.pt", tmp_path / "cache"
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(4, 2).state_dict(), weights)
    exports: list[int] = []
    export = _linear_export(weights, exports)
    spec = ExportSpec("tiny.linear", weights, {"in": 4})
    first = cached_graph(spec, export, cache)
    assert cached_graph(spec, export, cache) == first and len(exports) == 1  # cached: not exported again
    x = np.ones((3, 4), np.float32)
    lin = torch.nn.Linear(4, 2)
    lin.load_state_dict(torch.load(weights))
    np.testing.assert_allclose(
        onnx.session(first).run(None, {"x": x})[0], lin(torch.from_numpy(x)).detach().numpy(), atol=1e-6
    )
    other = cached_graph(ExportSpec("tiny.linear", weights, {"in": 4, "opt": "x"}), export, cache)
    assert other != first and len(exports) == 2 and not first.exists()  # another setting: the old one is stale
    torch.save(torch.nn.Linear(4, 2).state_dict(), weights)  # new weights, same settings
    fresh = cached_graph(ExportSpec("tiny.linear", weights, {"in": 4, "opt": "x"}), export, cache)
    assert fresh != other and len(exports) == 3 and sorted(p.name for p in cache.iterdir()) == [fresh.name]


def test_a_cached_graph_that_does_not_load_is_exported_again(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), weights)
    exports: list[int] = []
    spec = ExportSpec("tiny.linear", weights, {})
    path = cached_graph(spec, _linear_export(weights, exports), tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # truncated on disk
    sess = onnx._open(spec, _linear_export(weights, exports), tmp_path)
    assert len(exports) == 2 and sess.run(None, {"x": np.ones((1, 4), np.float32)})[0].shape == (1, 2)
