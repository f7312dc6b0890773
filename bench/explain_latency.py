"""Explain latency: the default method (Grad-CAM) per image, uncached, against one forward pass.

Times what ``Explainer._compute`` does for an image read from a JPEG file (decode,
aspect-keeping preprocess, score, attribution, resize of the map to the image's size) with
a seeded head in service and an 8-post brand, and right after it, on the same image, the
encoder's plain forward pass (paired: the ratio holds on a shared machine). The on-disk
cache would answer a repeat in microseconds; nothing here hits it. Images are real photos
from ``../shared/data/photos`` when present, else seeded synthetic JPEGs.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import Section, Table, sample_ab, stats
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import KNOWN_DIMS
from congruence.encoders.images import read_image
from congruence.encoders.torch_models import image_encoder
from congruence.search.attribution import (
    BrandSide,
    attribute,
    resize_map,
    score_function,
)
from congruence.training.model import CongruenceHead, HeadConfig

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
DEFAULT_METHOD = "gradcam"  # the default of `congruence explain` and Explainer.explain_image


@dataclass(frozen=True)
class ExplainConfig:
    images: int
    method: str = DEFAULT_METHOD
    brand_posts: int = 8
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> ExplainConfig:
        return cls(6 if quick else 40)


def image_files(n: int, tmp: Path, seed: int) -> tuple[list[Path], str]:
    """n JPEG paths: real photos when available, else synthetic 640x480 ones written to ``tmp``."""
    labels = PHOTOS / "labels.csv"
    if labels.is_file():
        with labels.open() as fh:
            rows = [r["path"] for r in csv.DictReader(fh)]
        pick = np.random.default_rng(seed).choice(len(rows), min(n, len(rows)), replace=False)
        return [PHOTOS / rows[int(i)] for i in pick], f"{len(pick)} photos from {PHOTOS}"
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        arr = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
        p = tmp / f"img{i}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        out.append(p)
    return out, f"{n} synthetic 640x480 JPEGs (no {PHOTOS})"


def run(cfg: ExplainConfig) -> Section:
    section = Section(f"explain latency ({cfg.method}, per image, uncached)")
    settings = Settings()
    enc = image_encoder(settings.image_encoder, settings.device)  # the instance ingest loaded, if it ran
    torch.manual_seed(cfg.seed)
    d_text = KNOWN_DIMS.get(settings.text_encoder, 384)
    head = CongruenceHead(HeadConfig(enc.dim, d_text, d_model=256)).eval()
    posts = np.random.default_rng(cfg.seed).standard_normal((cfg.brand_posts, 256)).astype(np.float32)
    posts /= np.linalg.norm(posts, axis=1, keepdims=True)
    brand = BrandSide(np.zeros(d_text, np.float32), head=head, posts=posts)
    prep = getattr(enc, "preprocess_keep_aspect", enc.preprocess)
    with tempfile.TemporaryDirectory(prefix="congruence-explain-bench-") as tmp:
        files, source = image_files(cfg.images, Path(tmp), cfg.seed)
        sizes: list[tuple[int, int]] = []

        def explain(i: int) -> None:
            image, _ = read_image(files[i % len(files)])
            x = prep(image.convert("RGB"))[None].to(enc.device)
            fn = score_function(enc.features, brand)
            with torch.no_grad():
                fn(x)
            heat = attribute(fn, x, cfg.method, enc.feature_layer())
            resize_map(heat, image.height, image.width)
            sizes.append(tuple(x.shape[-2:]))

        def forward(i: int) -> None:
            image, _ = read_image(files[i % len(files)])
            x = prep(image.convert("RGB"))[None].to(enc.device)
            with torch.inference_mode():
                enc.features(x)

        t_exp, t_fwd = sample_ab(explain, forward, len(files), warmup=2)
    s_exp, s_fwd = stats(t_exp), stats(t_fwd)
    section.tables.append(
        Table(
            "per image (decode + preprocess included in both)",
            [
                {
                    "path": f"explain ({cfg.method})",
                    "p50 ms": s_exp.median_ms,
                    "p99 ms": s_exp.p99_ms,
                    "mean ms": s_exp.mean_ms,
                    "images/s": s_exp.per_s,
                    "vs forward (paired p50)": float(np.median(t_exp / t_fwd)),
                },
                {
                    "path": "forward only (baseline)",
                    "p50 ms": s_fwd.median_ms,
                    "p99 ms": s_fwd.p99_ms,
                    "mean ms": s_fwd.mean_ms,
                    "images/s": s_fwd.per_s,
                    "vs forward (paired p50)": 1.0,
                },
            ],
        )
    )
    section.notes.append(
        f"{source}; encoder {settings.image_encoder} on {enc.device}, inputs {sorted(set(sizes))[:3]} "
        f"(aspect kept); head d=256 seeded, brand of {cfg.brand_posts} posts"
    )
    section.details = {
        "config": asdict(cfg),
        "source": source,
        "explain_ms": asdict(s_exp),
        "forward_ms": asdict(s_fwd),
    }
    return section
