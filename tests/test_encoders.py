"""Real encoders: the packaged defaults, and open_clip loaded from a local checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from congruence.core.compat import ensure_torchvision
from congruence.core.errors import InvalidInput
from congruence.encoders.inference import encode_images
from congruence.encoders.torch_models import image_encoder, text_encoder

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _img(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (64, 48), color)


def test_packaged_image_encoder_gives_normalised_1280d_features() -> None:
    enc = image_encoder("efficientnet-lite0")
    v = encode_images(enc, [_img((200, 30, 30)), _img((200, 30, 30)), _img((20, 20, 220))])
    assert v.shape == (3, 1280) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)
    assert v[0] @ v[2] < 0.99


def test_packaged_text_encoder_is_minilm() -> None:
    enc = text_encoder("minilm-l6")
    v = enc.encode(["trail running shoes", "running sneakers for trails", "chocolate cake recipe"])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_unknown_encoder_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown image encoder 'resnet9000'"):
        image_encoder("resnet9000")
    with pytest.raises(InvalidInput, match="open_clip weights not found: /no/such/weights.pt"):
        image_encoder("open_clip:ViT-B-32@/no/such/weights.pt")


def test_open_clip_tiny_config_round_trips_through_a_local_checkpoint(tmp_path: Path) -> None:
    ensure_torchvision()
    import open_clip

    cfg = tmp_path / "tiny-clip.json"
    cfg.write_text(json.dumps(TINY))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip", pretrained=None)
    weights = tmp_path / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)  # what a user with downloaded weights has

    spec = f"open_clip:{cfg}@{weights}"
    img_enc, txt_enc = image_encoder(spec, "cpu"), text_encoder(spec, "cpu")
    assert img_enc.dim == 32 and txt_enc.dim == 32
    images = [_img((255, 0, 0)), _img((0, 0, 255))]
    got = encode_images(img_enc, images)
    model.eval()
    with torch.no_grad():
        want = model.encode_image(torch.stack([img_enc.preprocess(i) for i in images]))
    np.testing.assert_allclose(got, torch.nn.functional.normalize(want, dim=-1).numpy(), atol=1e-5)
    with torch.no_grad():
        want_t = model.encode_text(open_clip.get_tokenizer("tiny-clip")(["a red square"]))
    np.testing.assert_allclose(
        txt_enc.encode(["a red square"]), torch.nn.functional.normalize(want_t, dim=-1).numpy(), atol=1e-5
    )
