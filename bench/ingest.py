"""Ingest throughput on a synthetic demo corpus, against the encoder's raw forward rate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import Row, Section, Stats, Table, sample_latency, stats, stopwatch
from bench.pg import EmbeddedPg
from congruence.core.settings import Settings
from congruence.indexer.demo import build_demo
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
        return cls(influencers_per_category=3, forward_batches=3) if quick else cls(20, 6)


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


def raw_forward(batch_size: int, batches: int) -> Stats:
    """Per-batch time of the image encoder's forward pass on preloaded random tensors."""
    enc = image_encoder(Settings().image_encoder)
    x = torch.randn(batch_size, 3, enc.input_size, enc.input_size).to(enc.device)

    def call(_: int) -> None:
        with torch.inference_mode():
            enc.features(x)
        if enc.device.type == "cuda":
            torch.cuda.synchronize()

    return stats(sample_latency(call, batches, warmup=1))


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
        rows.append({"stage": stage, "seconds": sec, "share %": 100 * sec / wall, "posts/s": n_posts / sec if sec else None})
    rows.append({"stage": "  encode: images", "seconds": split.images, "share %": 100 * split.images / wall,
                 "posts/s": report.images_encoded / split.images if split.images else None})
    rows.append({"stage": "  encode: captions", "seconds": split.texts, "share %": 100 * split.texts / wall,
                 "posts/s": report.texts_encoded / split.texts if split.texts else None})
    other = wall - sum(float(report.seconds.get(s, 0.0)) for s in STAGES)
    rows.append({"stage": "open + migrate", "seconds": other, "share %": 100 * other / wall, "posts/s": None})
    rows.append({"stage": "total", "seconds": wall, "share %": 100.0, "posts/s": n_posts / wall})
    return rows


def efficiency_rows(report: IngestReport, wall: float, split: EncodeSplit, fwd: Stats, batch: int) -> list[Row]:
    raw = batch / (fwd.median_ms / 1000)
    e2e = report.images_encoded / wall
    img_stage = report.images_encoded / split.images if split.images else float("nan")
    return [
        {"measure": "raw forward (preloaded tensors)", "images/s": raw, "vs raw": 1.0,
         "batch p50 ms": fwd.median_ms, "batch p99 ms": fwd.p99_ms},
        {"measure": "image-encode stage (decode+forward+store)", "images/s": img_stage, "vs raw": img_stage / raw,
         "batch p50 ms": None, "batch p99 ms": None},
        {"measure": "end-to-end ingest (pipeline efficiency)", "images/s": e2e, "vs raw": e2e / raw,
         "batch p50 ms": None, "batch p99 ms": None},
    ]


def run(cfg: IngestConfig, tmp: Path, pg: EmbeddedPg) -> Section:
    section = Section("ingest")
    with stopwatch() as sw_demo:
        corpus = build_demo(tmp / "corpus", influencers_per_category=cfg.influencers_per_category, seed=cfg.seed)
    load_s = preload_encoders()
    fwd = raw_forward(cfg.batch_size, cfg.forward_batches)
    settings = Settings(home=tmp / "home", database_url=pg.fresh_database("bench_ingest"), batch_size=cfg.batch_size)
    clock = _ProgressClock()
    with stopwatch() as sw:
        report = ingest(corpus, settings, progress=clock)
    wall = sw[0]
    split = clock.split(float(report.seconds.get("encode", 0.0)))
    n_posts = report.posts_new + report.posts_updated
    section.tables.append(Table(f"ingest stages: {n_posts} posts, {report.accounts_new} accounts", stage_rows(report, wall, split)))
    section.tables.append(Table("encoder efficiency (ratio = images/s over the raw forward rate)",
                                efficiency_rows(report, wall, split, fwd, cfg.batch_size)))
    section.notes += [
        f"corpus built in {sw_demo[0]:.1f} s; encoders preloaded in {load_s:.1f} s (not in ingest time)",
        f"raw forward: batches of {cfg.batch_size} random 224x224 tensors, {fwd.n} timed after 1 warm-up",
        "encode split into images/captions from the progress callback; index kind "
        f"{report.index.get('kind')} over {report.index.get('size')} influencers",
    ]
    section.details = {"report": report.to_dict(), "wall_s": wall, "encode_split": split.__dict__,
                       "raw_forward": fwd.__dict__, "encoder_load_s": load_s, "config": cfg.__dict__}
    if report.rejected:
        section.notes.append(f"{len(report.rejected)} rows rejected (see JSON)")
    return section
