"""Ingest throughput on a synthetic demo corpus, against the encoder's raw forward rate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.common import Row, Section, Table, sample_latency, stats, stopwatch
from congruence.core.settings import Settings
from congruence.datasets.demo import build_demo
from congruence.indexer.embedded_pg import EmbeddedPg
from congruence.indexer.encoders import image_encoder, text_encoder
from congruence.indexer.ingest import IngestReport, ingest

logger = logging.getLogger(__name__)
STAGES = ("store", "encode", "pool", "index")


@dataclass(frozen=True)
class IngestConfig:
    influencers_per_category: int  # 6 categories, 5 posts each, plus 4 posts per brand
    forward_batches: int  # timed forward batches, after one warm-up
    batch_size: int = 32
    seed: int = 7

    @classmethod
    def for_run(cls, quick: bool) -> IngestConfig:
        return cls(influencers_per_category=3, forward_batches=6) if quick else cls(20, 10)


@dataclass(frozen=True)
class EncodeSplit:
    """Seconds of the encode stage spent on images and on captions (from progress events)."""

    images: float
    texts: float


class _ProgressClock:
    """Records when the last image batch and the last caption batch finished."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, n: int) -> None:
        self.last[stage] = time.perf_counter()

    def split(self, encode_s: float) -> EncodeSplit:
        """Images run first, captions after; the last batch ends the encode stage."""
        if not self.last:
            return EncodeSplit(0.0, 0.0)
        start = max(self.last.values()) - encode_s
        images = min(max(self.last.get("images", start) - start, 0.0), encode_s)
        return EncodeSplit(images=images, texts=encode_s - images)


@dataclass(frozen=True)
class Forward:
    """Timed forward batches: wall seconds per batch and process CPU seconds over all."""

    wall: np.ndarray
    cpu: float

    def __add__(self, other: Forward) -> Forward:
        return Forward(np.concatenate([self.wall, other.wall]), self.cpu + other.cpu)


def raw_forward(batch_size: int, batches: int, warmup: int) -> Forward:
    """The image encoder's forward pass on preloaded random tensors, ``batches`` times."""
    enc = image_encoder(Settings().image_encoder)
    x = torch.randn(batch_size, 3, enc.input_size, enc.input_size).to(enc.device)

    def call(_: int) -> None:
        with torch.inference_mode():
            enc.features(x)
        if enc.device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(warmup):
        call(i)
    cpu = time.process_time()
    wall = sample_latency(call, batches, warmup=0)
    return Forward(wall, time.process_time() - cpu)


def preload_encoders() -> float:
    """Load both default encoders so ingest timings exclude model loading; seconds taken."""
    s = Settings()
    with stopwatch() as sw:
        image_encoder(s.image_encoder, s.device)
        text_encoder(s.text_encoder, s.device)
    return sw[0]


def stage_rows(report: IngestReport, wall: float, split: EncodeSplit) -> list[Row]:
    n_posts = report.posts_new + report.posts_updated
    rows: list[Row] = []
    for stage in STAGES:
        sec = float(report.seconds.get(stage, 0.0))
        rows.append({"stage": stage, "seconds": sec, "share %": 100 * sec / wall,
                     "posts/s": n_posts / sec if sec else None})
    rows.append({"stage": "  encode: images", "seconds": split.images, "share %": 100 * split.images / wall,
                 "posts/s": report.images_encoded / split.images if split.images else None})
    rows.append({"stage": "  encode: captions", "seconds": split.texts, "share %": 100 * split.texts / wall,
                 "posts/s": report.texts_encoded / split.texts if split.texts else None})
    other = wall - sum(float(report.seconds.get(s, 0.0)) for s in STAGES)
    rows.append({"stage": "open + migrate", "seconds": other, "share %": 100 * other / wall, "posts/s": None})
    rows.append({"stage": "total", "seconds": wall, "share %": 100.0, "posts/s": n_posts / wall})
    return rows


@dataclass(frozen=True)
class Measured:
    """One ingest run with the raw forward rate measured around it."""

    report: IngestReport
    wall: float  # seconds of the ingest call
    cpu: float  # process CPU seconds of the ingest call (the database server not included)
    split: EncodeSplit
    forward: Forward
    batch_size: int


def efficiency_rows(m: Measured) -> list[Row]:
    fwd = stats(m.forward.wall)
    n_raw = len(m.forward.wall) * m.batch_size
    raw = m.batch_size / (fwd.median_ms / 1000)
    raw_cpu_ms = 1000 * m.forward.cpu / n_raw
    n_img = m.report.images_encoded
    e2e_cpu_ms = 1000 * m.cpu / n_img if n_img else float("nan")
    img_stage = n_img / m.split.images if m.split.images else float("nan")
    e2e = n_img / m.wall
    return [
        {"measure": "raw forward (preloaded tensors)", "images/s": raw, "vs raw": 1.0,
         "CPU ms/image": raw_cpu_ms, "vs raw (CPU)": 1.0, "batch p50 ms": fwd.median_ms, "batch p99 ms": fwd.p99_ms},
        {"measure": "image-encode stage (decode+forward+store)", "images/s": img_stage, "vs raw": img_stage / raw,
         "CPU ms/image": None, "vs raw (CPU)": None, "batch p50 ms": None, "batch p99 ms": None},
        {"measure": "end-to-end ingest (pipeline efficiency)", "images/s": e2e, "vs raw": e2e / raw,
         "CPU ms/image": e2e_cpu_ms, "vs raw (CPU)": raw_cpu_ms / e2e_cpu_ms, "batch p50 ms": None,
         "batch p99 ms": None},
    ]


def _rate(batch_seconds: np.ndarray, batch_size: int) -> float:
    return batch_size / float(np.median(batch_seconds)) if len(batch_seconds) else float("nan")


def measure(cfg: IngestConfig, corpus: Path, settings: Settings) -> Measured:
    # half the forward batches before ingest and half after, so a change in the load of
    # the shared machine during the run weighs on both sides of the ratio
    before = raw_forward(cfg.batch_size, cfg.forward_batches // 2, warmup=1)
    clock = _ProgressClock()
    cpu = time.process_time()
    with stopwatch() as sw:
        report = ingest(corpus, settings, progress=clock)
    cpu = time.process_time() - cpu
    after = raw_forward(cfg.batch_size, cfg.forward_batches - cfg.forward_batches // 2, warmup=0)
    split = clock.split(float(report.seconds.get("encode", 0.0)))
    return Measured(report, sw[0], cpu, split, before + after, cfg.batch_size)


def run(cfg: IngestConfig, tmp: Path, pg: EmbeddedPg) -> Section:
    section = Section("ingest")
    with stopwatch() as sw_demo:
        corpus = build_demo(tmp / "corpus", influencers_per_category=cfg.influencers_per_category, seed=cfg.seed)
    load_s = preload_encoders()
    settings = Settings(home=tmp / "home", database_url=pg.fresh_database("bench_ingest"), batch_size=cfg.batch_size)
    m = measure(cfg, corpus, settings)
    r = m.report
    half = cfg.forward_batches // 2
    section.tables.append(Table(f"ingest stages: {r.posts_new + r.posts_updated} posts, {r.accounts_new} accounts",
                                stage_rows(r, m.wall, m.split)))
    section.tables.append(Table("encoder efficiency (ratios over the raw forward rate, by wall time and by CPU time)",
                                efficiency_rows(m)))
    section.notes += [
        f"corpus built in {sw_demo[0]:.1f} s; encoders preloaded in {load_s:.1f} s (not in ingest time)",
        f"raw forward: batches of {cfg.batch_size} random 224x224 tensors, {len(m.forward.wall)} timed after 1 "
        f"warm-up, half before ingest ({_rate(m.forward.wall[:half], cfg.batch_size):.1f} images/s) and half "
        f"after ({_rate(m.forward.wall[half:], cfg.batch_size):.1f} images/s): a gap between them means the "
        "machine's load changed",
        "encode split into images/captions from the progress callback; index "
        f"{r.index.get('kind')} over {r.index.get('size')} influencers",
        "CPU time is this process's (all threads), not the database server's",
    ]
    if r.rejected:
        section.notes.append(f"{len(r.rejected)} rows rejected (see JSON)")
    section.details = {"report": r.to_dict(), "wall_s": m.wall, "cpu_s": m.cpu, "encode_split": m.split.__dict__,
                       "raw_forward_wall_s": m.forward.wall.tolist(), "raw_forward_cpu_s": m.forward.cpu,
                       "encoder_load_s": load_s, "config": cfg.__dict__}
    return section
