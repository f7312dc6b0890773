"""The only reader of the environment. Everything else receives a ``Settings``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
DEFAULT_TEXT_ENCODER = "minilm-l6"


@dataclass(frozen=True)
class Settings:
    """Run-time configuration, fixed for the life of a process.

    home: where the embedded database, the FAISS index and models live.
    database_url: an external PostgreSQL with pgvector; None = embedded server under home.
    image_encoder / text_encoder: encoder registry names (see encoders.torch_models).
    device: "auto", "cpu" or "cuda".
    cpu_runtime: "onnx" (encoding on the CPU runs ONNX Runtime graphs of the same weights) or
        "torch" (PyTorch eager, as before); CUDA and the explanations always use PyTorch.
    exact_threshold: indexes up to this many vectors are exact (flat); above, HNSW.
    compress_threshold: HNSW indexes above this many vectors store 8-bit codes (sq8).
    shard_ivf_threshold: shards above this many vectors are IVF-PQ (0: never), their
        vectors for the re-score on disk.
    shard_refine_bits: those vectors at 8 bits (int8 and a scale a row) or 16 (float16):
        half the disk and page cache, or scores ~30x closer to exact.
    post_vectors: how a serving engine reads the per-post vectors it maps: 'cached' (the
        kernel's defaults: the load's checksum leaves them in the page cache, which keeps them
        while memory allows; fast while they fit), 'paged' (read a page at a time as queries
        touch them, each query's pages read ahead together; the re-score vectors mapped whole:
        memory bounded by use, each miss a disk read), or 'auto' (paged for IVF-PQ shards,
        the layout for accounts past memory; cached otherwise).
    ef_search: HNSW search breadth for unfiltered queries (more: higher recall, slower).
    candidates: how many FAISS candidates a match query retrieves before reranking.
    batch_size: encoder batch size.
    rate_limit: API requests per minute per key (0: no limit).
    """

    home: Path = Path(".congruence")
    database_url: str | None = None
    image_encoder: str = DEFAULT_IMAGE_ENCODER
    text_encoder: str = DEFAULT_TEXT_ENCODER
    device: str = "auto"
    cpu_runtime: str = "onnx"
    exact_threshold: int = 5_000
    compress_threshold: int = 200_000
    shard_ivf_threshold: int = 0
    shard_refine_bits: int = 8
    post_vectors: str = "auto"
    ef_search: int = 96
    candidates: int = 200
    batch_size: int = 32
    rate_limit: int = 600

    @property
    def pgdata(self) -> Path:
        return self.home / "pg"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{key}: must be at least {minimum}, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from the environment; fail fast on bad values."""
    env = os.environ if env is None else env
    device = env.get("CONGRUENCE_DEVICE", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"CONGRUENCE_DEVICE: expected auto, cpu or cuda, got {device!r}")
    cpu_runtime = env.get("CONGRUENCE_CPU_RUNTIME") or "onnx"
    if cpu_runtime not in ("onnx", "torch"):
        raise ValueError(f"CONGRUENCE_CPU_RUNTIME: expected onnx or torch, got {cpu_runtime!r}")
    refine_bits = _int(env, "CONGRUENCE_SHARD_REFINE_BITS", 8, 8)
    if refine_bits not in (8, 16):
        raise ValueError(f"CONGRUENCE_SHARD_REFINE_BITS: expected 8 or 16, got {refine_bits}")
    post_vectors = env.get("CONGRUENCE_POST_VECTORS") or "auto"
    if post_vectors not in ("auto", "cached", "paged"):
        raise ValueError(f"CONGRUENCE_POST_VECTORS: expected auto, cached or paged, got {post_vectors!r}")
    return Settings(
        home=Path(env.get("CONGRUENCE_HOME") or ".congruence").expanduser().absolute(),
        database_url=env.get("DATABASE_URL") or None,
        image_encoder=env.get("CONGRUENCE_IMAGE_ENCODER") or DEFAULT_IMAGE_ENCODER,
        text_encoder=env.get("CONGRUENCE_TEXT_ENCODER") or DEFAULT_TEXT_ENCODER,
        device=device,
        cpu_runtime=cpu_runtime,
        exact_threshold=_int(env, "CONGRUENCE_EXACT_THRESHOLD", 5_000, 1),
        compress_threshold=_int(env, "CONGRUENCE_COMPRESS_THRESHOLD", 200_000, 1),
        shard_ivf_threshold=_int(env, "CONGRUENCE_SHARD_IVF_THRESHOLD", 0, 0),
        shard_refine_bits=refine_bits,
        post_vectors=post_vectors,
        ef_search=_int(env, "CONGRUENCE_EF_SEARCH", 96, 1),
        candidates=_int(env, "CONGRUENCE_CANDIDATES", 200, 1),
        batch_size=_int(env, "CONGRUENCE_BATCH_SIZE", 32, 1),
        rate_limit=_int(env, "CONGRUENCE_RATE_LIMIT", 600, 0),
    )
