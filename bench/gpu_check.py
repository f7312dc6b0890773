"""The GPU check (``python -m bench --gpu``, or ``python -m bench.gpu_check``): one call, under 8
minutes on a lent H100/H200, writing one JSON.

Parts, each timed and recorded even when another fails:
- ``faiss``: FAISS-GPU flat search at 1M influencers (256-d, the head's space): QPS of a
  float32 and a float16 ``GpuIndexFlatIP`` over 10k queries, recall@10 against exact
  (float32 matrix products in torch on the GPU, 1,000 queries);
- ``encode``: the image encoder on CUDA (PyTorch: the GPU path keeps it) from JPEG files,
  decoded by a thread pool one batch ahead with pinned memory, as ingest does: images/s, and
  the raw forward on preloaded tensors beside it;
- ``rerank``: the head's batched rerank (``rerank_batch.score_lists``) of 200 candidates a
  brand on the GPU: brands/s;
- ``export``: the export's ranking core on the GPU, FAISS top-200 for every brand, the
  head's rerank, top-100 (file writing and PostgreSQL left out: the GPU host has neither
  psycopg nor an embedded server): brands/s.

Imports only torch, numpy, PIL, faiss and the parts of ``congruence`` that need nothing
else, so it runs on the GPU host's own Python (see ../shared/gpu/README.md for faiss-gpu and
the wheels). On a machine without CUDA it runs the same parts at the sizes given on the CPU
(the tests do, tiny), and says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)
PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
D_HEAD = 256


@dataclass(frozen=True)
class GpuConfig:
    n: int = 1_000_000
    queries: int = 10_000
    truth_queries: int = 1_000
    images: int = 2_000
    batch_size: int = 128
    brands: int = 2_000
    candidates: int = 200
    posts: tuple[int, int] = (4, 12)
    k: int = 100
    seed: int = 0

    @classmethod
    def tiny(cls) -> GpuConfig:
        return cls(n=3_000, queries=50, truth_queries=20, images=12, batch_size=4, brands=6, candidates=20, k=10)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _vectors(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d)).astype(np.float32)
    x = centres[rng.integers(0, 64, n)] + 0.7 * rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(xq: np.ndarray, xb: np.ndarray, k: int) -> np.ndarray:
    """(nq, k) exact top-k by inner product (float32, torch on the GPU when there is one)."""
    dev = _device()
    xb_t = torch.from_numpy(xb).to(dev)
    out = [
        torch.topk(torch.from_numpy(xq[i : i + 256]).to(dev) @ xb_t.T, k, dim=1).indices.cpu().numpy()
        for i in range(0, len(xq), 256)
    ]
    return np.concatenate(out)


def part_faiss(cfg: GpuConfig) -> dict[str, Any]:
    import faiss

    from congruence.datasets.synthetic import recall_at_k

    xb = _vectors(cfg.n, D_HEAD, cfg.seed)
    xq = _vectors(cfg.queries, D_HEAD, cfg.seed + 1)
    truth = exact_top(xq[: cfg.truth_queries], xb, 10)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    out: dict[str, Any] = {"gpus": gpus, "n": cfg.n, "queries": cfg.queries}
    for name, fp16 in (("flat_fp32", False), ("flat_fp16", True)):
        index: Any
        if gpus:
            conf = faiss.GpuIndexFlatConfig()
            conf.useFloat16 = fp16
            index = faiss.GpuIndexFlatIP(faiss.StandardGpuResources(), D_HEAD, conf)
        else:
            index = faiss.IndexFlatIP(D_HEAD)
        index.add(xb)
        index.search(xq[:100], 10)  # warm-up
        t = time.perf_counter()
        _, found = index.search(xq, 10)
        seconds = time.perf_counter() - t
        out[name] = {
            "qps": cfg.queries / seconds,
            "recall_at_10": recall_at_k(found[: cfg.truth_queries], truth),
            "on_gpu": bool(gpus),
        }
    return out


def _jpegs(cfg: GpuConfig, tmp: Path) -> list[Path]:
    """Real photos when ../shared/data/photos came along, else demo JPEGs written to ``tmp``."""
    if (PHOTOS / "labels.csv").exists():
        rows = (PHOTOS / "labels.csv").read_text().splitlines()[1:]
        return [PHOTOS / r.split(",")[0] for r in (rows * (cfg.images // max(len(rows), 1) + 1))[: cfg.images]]
    import random

    from congruence.datasets.demo import draw

    rng = random.Random(cfg.seed)
    tmp.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(cfg.images, 200)):
        paths.append(tmp / f"{i}.jpg")
        draw("fitness", rng).save(paths[-1], quality=88)
    return [paths[i % len(paths)] for i in range(cfg.images)]


def part_encode(cfg: GpuConfig, tmp: Path) -> dict[str, Any]:
    from congruence.encoders.base import encode_batch
    from congruence.encoders.images import read_image
    from congruence.encoders.torch_models import image_encoder

    enc = image_encoder("efficientnet-lite0", str(_device()))
    paths = _jpegs(cfg, tmp)

    def load(p: Path) -> torch.Tensor:
        return enc.preprocess(read_image(p, draft_size=enc.input_size * 2)[0])

    batches = [paths[i : i + cfg.batch_size] for i in range(0, len(paths), cfg.batch_size)]
    x = torch.stack([load(p) for p in batches[0]])
    encode_batch(enc, x)  # warm-up (cuDNN picks its kernels)
    _sync()
    t = time.perf_counter()
    for _ in range(len(batches)):
        encode_batch(enc, x)
    _sync()
    raw = len(batches) * len(x) / (time.perf_counter() - t)
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 2)) as pool:
        ahead = list(pool.map(load, batches[0]))
        for bi in range(len(batches)):
            nxt = [pool.submit(load, p) for p in batches[bi + 1]] if bi + 1 < len(batches) else []
            xb = torch.stack(ahead)
            encode_batch(enc, xb.pin_memory() if enc.device.type == "cuda" else xb)
            ahead = [f.result() for f in nxt]
    _sync()
    rate = len(paths) / (time.perf_counter() - t)
    return {
        "device": str(enc.device),
        "images": len(paths),
        "raw_forward_images_s": raw,
        "pipeline_images_s": rate,
        "pipeline_efficiency": rate / raw,
        "real_photos": (PHOTOS / "labels.csv").exists(),
    }


def _head_lists(
    cfg: GpuConfig,
) -> tuple[Any, list[np.ndarray], Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]], int]:
    """A seeded head on the device, brands' per-post vectors, and a gather over candidates' posts."""
    from congruence.training.model import CongruenceHead, HeadConfig

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = CongruenceHead(HeadConfig(1280, 384, d_model=D_HEAD)).to(_device()).eval()
    width = cfg.posts[1]
    pool = torch.from_numpy(_vectors(max(cfg.n // 100, cfg.candidates) * width, D_HEAD, cfg.seed + 2))
    pool = pool.reshape(-1, width, D_HEAD).to(_device())
    counts = torch.from_numpy(rng.integers(cfg.posts[0], cfg.posts[1] + 1, len(pool))).to(_device())
    mask = torch.arange(width, device=_device())[None, :] < counts[:, None]

    def gather(keys: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.asarray(keys) % len(pool)).to(_device())
        return pool[idx], mask[idx]

    brands = [
        _vectors(int(rng.integers(cfg.posts[0], cfg.posts[1] + 1)), D_HEAD, cfg.seed + 10 + i)
        for i in range(cfg.brands)
    ]
    return head, brands, gather, width


def part_rerank(cfg: GpuConfig) -> dict[str, Any]:
    from congruence.search.rerank_batch import score_lists

    head, brands, gather, width = _head_lists(cfg)
    rng = np.random.default_rng(cfg.seed)
    cands = [rng.integers(0, 1 << 30, cfg.candidates) for _ in brands]
    with torch.inference_mode():
        score_lists(head, brands[:2], cands[:2], gather, width)  # warm-up
        _sync()
        t = time.perf_counter()
        _, passes = score_lists(head, brands, cands, gather, width)
        _sync()
    seconds = time.perf_counter() - t
    return {
        "device": str(head.device),
        "brands": len(brands),
        "candidates": cfg.candidates,
        "passes": passes,
        "brands_s": len(brands) / seconds,
    }


def part_export(cfg: GpuConfig) -> dict[str, Any]:
    """FAISS top-``candidates`` of every brand, the head's rerank of them, top-k: brands/s."""
    import faiss

    from congruence.search.rerank_batch import score_lists

    head, brands, gather, width = _head_lists(cfg)
    xb = _vectors(cfg.n, D_HEAD, cfg.seed)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    index: Any = faiss.GpuIndexFlatIP(faiss.StandardGpuResources(), D_HEAD) if gpus else faiss.IndexFlatIP(D_HEAD)
    index.add(xb)
    xq = np.stack([b.mean(axis=0) for b in brands]).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    t = time.perf_counter()
    _, cand = index.search(xq, cfg.candidates)
    search_s = time.perf_counter() - t
    with torch.inference_mode():
        scores, _ = score_lists(head, brands, list(cand), gather, width)
        top = [c[np.argsort(-s, kind="stable")[: cfg.k]] for c, s in zip(cand, scores, strict=True)]
        _sync()
    seconds = time.perf_counter() - t
    return {
        "brands": len(brands),
        "k": cfg.k,
        "faiss_on_gpu": bool(gpus),
        "search_s": search_s,
        "brands_s": len(brands) / seconds,
        "rows": int(sum(len(x) for x in top)),
    }


def run(cfg: GpuConfig, tmp: Path, parts: Sequence[str] = ("faiss", "encode", "rerank", "export")) -> dict[str, Any]:
    """Every part in turn; a part that fails records its error and the others still run."""
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "faiss": lambda: part_faiss(cfg),
        "encode": lambda: part_encode(cfg, tmp / "jpegs"),
        "rerank": lambda: part_rerank(cfg),
        "export": lambda: part_export(cfg),
    }
    out: dict[str, Any] = {
        "config": asdict(cfg),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "parts": {},
    }
    for name in parts:
        t = time.perf_counter()
        try:
            result = runners[name]()
        except Exception as e:  # recorded, so one missing package does not lose the other figures
            result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}
        result["seconds"] = time.perf_counter() - t
        out["parts"][name] = result
        logger.warning("gpu check %s: %s", name, json.dumps(result, default=str)[:400])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, help="JSON path (default bench/results/gpu-<UTC time>.json)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run on a CPU)")
    p.add_argument("--parts", default="faiss,encode,rerank,export")
    args = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="congruence-gpu-") as tmp:
        doc = run(GpuConfig.tiny() if args.tiny else GpuConfig(), Path(tmp), args.parts.split(","))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path(__file__).resolve().parent / "results" / f"gpu-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(
        json.dumps(
            {k: {kk: v for kk, v in part.items() if kk != "traceback"} for k, part in doc["parts"].items()},
            indent=1,
            default=str,
        )
    )
    print(f"results in {out}")
    return 1 if any("error" in part for part in doc["parts"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
