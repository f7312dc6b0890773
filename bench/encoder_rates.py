"""PyTorch eager against ONNX Runtime on the CPU, on real photos and real captions, in one process.

Images (../shared/data/photos): the raw forward pass of both runtimes on the same
preloaded batches, interleaved batch by batch (so a change of load hits both); decoding +
preprocessing alone (ingest's thread pool); and the pipeline ingest runs (decode one batch
ahead in threads, ONNX Runtime forward), whose rate over the raw ONNX Runtime forward is the
pipeline efficiency. Cosine of every photo's ONNX Runtime vector with PyTorch's.

Captions (../shared/data/instagram/posts.jsonl.gz): today's path (sentence-transformers,
batches of 64 in content-hash order, as ``encode_texts`` read them), the same length-sorted,
ONNX Runtime float32 length-sorted (the product's path now), and ONNX Runtime with int8
dynamic quantisation; rounds interleaved. Each variant's vectors against today's: min
cosine, and top-10 agreement of caption-to-caption rankings (every 5th caption a query).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from bench.common import Row, Section, Table
from congruence.encoders.base import encode_batch
from congruence.encoders.onnx import OrtTextEncoder, ort_image_encoder, ort_text_encoder, session
from congruence.encoders.torch_models import image_encoder, text_encoder
from congruence.indexer.encode import _load

logger = logging.getLogger(__name__)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTOS, POSTS = SHARED / "photos", SHARED / "instagram" / "posts.jsonl.gz"
TARGET_IMAGE_X, TARGET_EFFICIENCY, TARGET_TEXT_X, TARGET_AGREEMENT = 6.0, 0.8, 2.0, 0.98


@dataclass(frozen=True)
class RatesConfig:
    photos: int = 192
    captions: int = 800
    rounds: int = 2
    batch_size: int = 32

    @classmethod
    def for_run(cls, quick: bool) -> RatesConfig:
        return cls(32, 128, 1) if quick else cls()


def _photo_paths(n: int) -> list[Path]:
    rows = (PHOTOS / "labels.csv").read_text().splitlines()[1:]
    return [PHOTOS / r.split(",")[0] for r in rows[:: max(1, len(rows) // n)][:n]]


def _captions(n: int) -> list[str]:
    out: list[str] = []
    with gzip.open(POSTS, "rt", encoding="utf-8") as f:
        for line in f:
            if (c := json.loads(line).get("caption") or "").strip():
                out.append(c)
            if len(out) == n:
                break
    return out


def _pipeline(enc: object, paths: Sequence[Path], batch: int) -> float:
    """Seconds to decode, preprocess and encode ``paths`` as ``encode.encode_images`` does (no database)."""
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        batches = [paths[i : i + batch] for i in range(0, len(paths), batch)]
        ahead = [pool.submit(_load, enc, str(p.parent), p.name) for p in batches[0]]  # type: ignore[arg-type]
        for bi in range(len(batches)):
            loaded = [f.result() for f in ahead]
            ahead = (
                [
                    pool.submit(_load, enc, str(p.parent), p.name)  # type: ignore[arg-type]
                    for p in batches[bi + 1]
                ]
                if bi + 1 < len(batches)
                else []
            )
            encode_batch(enc, torch.stack([x for x in loaded if isinstance(x, torch.Tensor)]))  # type: ignore[arg-type]
    return time.perf_counter() - t


def image_rows(cfg: RatesConfig) -> tuple[list[Row], dict[str, float]]:
    slow, fast = image_encoder("efficientnet-lite0", "cpu"), ort_image_encoder("efficientnet-lite0")
    assert fast is not None, "onnxruntime is not installed"
    paths = _photo_paths(cfg.photos)
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        x = torch.stack(list(pool.map(lambda p: _load(fast, str(p.parent), p.name), paths)))  # type: ignore[arg-type, return-value]
    decode_rate = len(paths) / (time.perf_counter() - t)
    cos = (encode_batch(slow, x) * encode_batch(fast, x)).sum(axis=1)
    for enc in (slow, fast):  # warm-up
        encode_batch(enc, x[: cfg.batch_size])  # type: ignore[arg-type]
    wall = {"pytorch": 0.0, "onnx": 0.0}
    pipeline = 0.0
    for _ in range(cfg.rounds):  # batch by batch, the runtimes alternating
        for i in range(0, len(x), cfg.batch_size):
            for name, enc in (("pytorch", slow), ("onnx", fast)):
                t = time.perf_counter()
                encode_batch(enc, x[i : i + cfg.batch_size])  # type: ignore[arg-type]
                wall[name] += time.perf_counter() - t
        pipeline += _pipeline(fast, paths, cfg.batch_size)
    n = cfg.rounds * len(x)
    rate = {k: n / v for k, v in wall.items()}
    pipe = n / pipeline
    rows: list[Row] = [
        {"measure": "PyTorch eager forward (preloaded batches)", "images/s": rate["pytorch"], "x PyTorch": 1.0},
        {
            "measure": "ONNX Runtime forward (same batches, interleaved)",
            "images/s": rate["onnx"],
            "x PyTorch": rate["onnx"] / rate["pytorch"],
        },
        {"measure": "decode + preprocess alone (2 threads)", "images/s": decode_rate, "x PyTorch": None},
        {
            "measure": "pipeline: decode ahead + ONNX Runtime (as ingest)",
            "images/s": pipe,
            "x PyTorch": pipe / rate["pytorch"],
        },
    ]
    return rows, {
        "pytorch": rate["pytorch"],
        "onnx": rate["onnx"],
        "pipeline": pipe,
        "efficiency": pipe / rate["onnx"],
        "min_cosine": float(cos.min()),
        "photos": len(paths),
    }


def _int8(fp32: OrtTextEncoder, tmp: Path) -> OrtTextEncoder:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(fp32.session._model_path)
    dst = tmp / "minilm-int8.onnx"
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    return OrtTextEncoder(fp32.name + "-int8", session(dst), fp32.tokenizer, fp32.dim, fp32.max_len)


def _top10_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    q = np.arange(0, len(ref), 5)
    a = np.argsort(-(ref[q] @ ref.T), axis=1)[:, 1:11]  # the caption itself ranks first
    b = np.argsort(-(got[q] @ got.T), axis=1)[:, 1:11]
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def text_rows(cfg: RatesConfig, tmp: Path) -> tuple[list[Row], dict[str, float]]:
    caps = sorted(_captions(cfg.captions), key=lambda c: hashlib.sha256(c.encode()).hexdigest())
    st, fast = text_encoder("minilm-l6", "cpu"), ort_text_encoder("minilm-l6")
    assert isinstance(fast, OrtTextEncoder), "onnxruntime is not installed"
    int8 = _int8(fast, tmp)
    by_len = sorted(range(len(caps)), key=lambda i: len(caps[i]))

    def batched(encode: Callable[[Sequence[str]], np.ndarray], order: Sequence[int]) -> np.ndarray:
        out = np.zeros((len(caps), 384), np.float32)
        for b in range(0, len(order), 64):
            rows = list(order[b : b + 64])
            out[rows] = encode([caps[i] for i in rows])
        return out

    variants = {
        "today: sentence-transformers, hash order": (st.encode, range(len(caps))),
        "sentence-transformers, length-sorted": (st.encode, by_len),
        "ONNX Runtime float32, length-sorted (product)": (fast.encode, by_len),
        "ONNX Runtime int8 dynamic, length-sorted": (int8.encode, by_len),
    }
    for encode, _ in variants.values():  # warm-up
        encode(caps[:64])
    wall = dict.fromkeys(variants, 0.0)
    vecs: dict[str, np.ndarray] = {}
    for _ in range(cfg.rounds):
        for name, (encode, order) in variants.items():
            t = time.perf_counter()
            vecs[name] = batched(encode, order)
            wall[name] += time.perf_counter() - t
    base_name = next(iter(variants))
    base, base_rate = vecs[base_name], cfg.rounds * len(caps) / wall[base_name]
    rows: list[Row] = []
    for name in variants:
        rate = cfg.rounds * len(caps) / wall[name]
        cos = (vecs[name] * base).sum(axis=1)
        rows.append(
            {
                "variant": name,
                "captions/s": rate,
                "x today": rate / base_rate,
                "min cosine": float(cos.min()),
                "top-10 agreement": _top10_agreement(base, vecs[name]),
            }
        )
    product = rows[2]
    return rows, {
        "x_today": float(product["x today"]),  # type: ignore[arg-type]
        "agreement": float(product["top-10 agreement"]),  # type: ignore[arg-type]
        "captions": len(caps),
    }


def run(cfg: RatesConfig, tmp: Path) -> Section:
    section = Section("encoders on the CPU: PyTorch eager vs ONNX Runtime, real photos and captions")
    if not (PHOTOS / "labels.csv").exists() or not POSTS.exists():
        section.notes.append(f"skipped: real photos or captions not found under {SHARED}")
        return section
    tmp.mkdir(parents=True, exist_ok=True)
    img_rows, img = image_rows(cfg)
    txt_rows, txt = text_rows(cfg, tmp)
    section.tables += [
        Table(f"images: {img['photos']} real photos, batch {cfg.batch_size}, {cfg.rounds} rounds", img_rows),
        Table(f"captions: {txt['captions']} real Instagram captions, batch 64, {cfg.rounds} rounds", txt_rows),
    ]
    met = (
        img["onnx"] / img["pytorch"] >= TARGET_IMAGE_X
        and img["efficiency"] >= TARGET_EFFICIENCY
        and img["min_cosine"] >= 0.9999
        and txt["x_today"] >= TARGET_TEXT_X
        and txt["agreement"] >= TARGET_AGREEMENT
    )
    section.notes += [
        f"images: ONNX Runtime {img['onnx'] / img['pytorch']:.1f}x PyTorch (target >= {TARGET_IMAGE_X:.0f}x), "
        f"pipeline efficiency {img['efficiency']:.2f} of the ONNX Runtime forward (target >= {TARGET_EFFICIENCY}), "
        f"min cosine vs PyTorch {img['min_cosine']:.7f}",
        f"captions: the product path {txt['x_today']:.2f}x today's (target >= {TARGET_TEXT_X:.0f}x), top-10 agreement "
        f"{txt['agreement']:.3f} (target >= {TARGET_AGREEMENT}); int8 changes the vectors, so it would be a new "
        "encoder name",
        "targets: " + ("met" if met else "MISSED"),
    ]
    section.details = {"config": asdict(cfg), "images": img, "texts": txt, "targets_met": met}
    return section


def main() -> int:
    import tempfile

    from bench.common import machine_info, report_section

    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="congruence-rates-") as tmp:
        t = time.perf_counter()
        section = run(RatesConfig(), Path(tmp))
        section.seconds = time.perf_counter() - t
    return report_section(section, "encoder-rates", machine)


if __name__ == "__main__":
    raise SystemExit(main())
