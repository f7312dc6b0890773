"""Ingest throughput on a synthetic demo corpus, against the encoder's raw forward rate.

The same corpus is ingested twice into fresh databases, with the CPU runtime of before
(PyTorch eager, ``cpu_runtime="torch"``) and of now (ONNX Runtime), and the raw forward pass
of both encoders is timed around the two runs, half before and half after: the ratios are
measured in one process, side by side.
"""

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
from congruence.encoders.base import BatchImageEncoder
from congruence.encoders.inference import inference_image_encoder
from congruence.encoders.torch_models import image_encoder, text_encoder
from congruence.indexer.ingest import IngestReport, ingest
from congruence.store.embedded_pg import EmbeddedPg

logger = logging.getLogger(__name__)
STAGES = ("store", "encode", "pool", "index")
RUNTIMES = ("torch", "onnx")
TARGET_X, TARGET_EFFICIENCY = 6.0, 0.8  # ONNX Runtime image stage over PyTorch's; over its own raw forward


@dataclass(frozen=True)
class IngestConfig:
    influencers_per_category: int  # 6 categories, 5 posts each, plus 4 posts per brand
    forward_batches: int  # timed forward batches, after one warm-up
    batch_size: int = 32
    seed: int = 7
    quick: bool = False  # too small to judge the targets

    @classmethod
    def for_run(cls, quick: bool) -> IngestConfig:
        return cls(influencers_per_category=3, forward_batches=6, quick=True) if quick else cls(20, 10)


@dataclass(frozen=True)
class EncodeSplit:
    """Seconds of the encode stage spent on images and on captions (from progress events)."""

    images: float
    texts: float


class _ProgressClock:
    """Records when the last image batch and the last caption batch finished."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, n: int, total: int) -> None:
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


def raw_forward(batch_size: int, batches: int, warmup: int, runtime: str = "onnx") -> Forward:
    """The image encoder's forward pass on preloaded random tensors, ``batches`` times, in
    ``runtime`` (on the CPU; a GPU runs PyTorch either way)."""
    s = Settings()
    enc: BatchImageEncoder = inference_image_encoder(s.image_encoder, s.device, runtime)
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
    """Load (and export, the first time) both default encoders in both runtimes, so ingest
    timings exclude model loading; seconds taken."""
    from congruence.encoders.inference import inference_text_encoder

    s = Settings()
    with stopwatch() as sw:
        image_encoder(s.image_encoder, s.device)
        text_encoder(s.text_encoder, s.device)
        inference_image_encoder(s.image_encoder, s.device)
        inference_text_encoder(s.text_encoder, s.device)
    return sw[0]


def stage_rows(report: IngestReport, wall: float, split: EncodeSplit) -> list[Row]:
    n_posts = report.posts_new + report.posts_updated
    rows: list[Row] = []
    for stage in STAGES:
        sec = float(report.seconds.get(stage, 0.0))
        rows.append(
            {"stage": stage, "seconds": sec, "share %": 100 * sec / wall, "posts/s": n_posts / sec if sec else None}
        )
    rows.append(
        {
            "stage": "  encode: images",
            "seconds": split.images,
            "share %": 100 * split.images / wall,
            "posts/s": report.images_encoded / split.images if split.images else None,
        }
    )
    rows.append(
        {
            "stage": "  encode: captions",
            "seconds": split.texts,
            "share %": 100 * split.texts / wall,
            "posts/s": report.texts_encoded / split.texts if split.texts else None,
        }
    )
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
        {
            "measure": "raw forward (preloaded tensors)",
            "images/s": raw,
            "vs raw": 1.0,
            "CPU ms/image": raw_cpu_ms,
            "vs raw (CPU)": 1.0,
            "batch p50 ms": fwd.median_ms,
            "batch p99 ms": fwd.p99_ms,
        },
        {
            "measure": "image-encode stage (decode+forward+store)",
            "images/s": img_stage,
            "vs raw": img_stage / raw,
            "CPU ms/image": None,
            "vs raw (CPU)": None,
            "batch p50 ms": None,
            "batch p99 ms": None,
        },
        {
            "measure": "end-to-end ingest (pipeline efficiency)",
            "images/s": e2e,
            "vs raw": e2e / raw,
            "CPU ms/image": e2e_cpu_ms,
            "vs raw (CPU)": raw_cpu_ms / e2e_cpu_ms,
            "batch p50 ms": None,
            "batch p99 ms": None,
        },
    ]


def _rate(batch_seconds: np.ndarray, batch_size: int) -> float:
    return batch_size / float(np.median(batch_seconds)) if len(batch_seconds) else float("nan")


def _ingest_once(corpus: Path, settings: Settings) -> tuple[IngestReport, float, float, EncodeSplit]:
    clock = _ProgressClock()
    cpu = time.process_time()
    with stopwatch() as sw:
        report = ingest(corpus, settings, progress=clock)
    cpu = time.process_time() - cpu
    return report, sw[0], cpu, clock.split(float(report.seconds.get("encode", 0.0)))


def measure(cfg: IngestConfig, corpus: Path, tmp: Path, pg: EmbeddedPg) -> dict[str, Measured]:
    """Each runtime's ingest into a fresh database, with both raw forward rates timed half
    before the two ingests and half after (in reverse order), so a change in the load of
    the shared machine weighs on both sides of every ratio."""
    half = cfg.forward_batches // 2
    before = {rt: raw_forward(cfg.batch_size, half, 1, rt) for rt in RUNTIMES}
    runs = {}
    for rt in RUNTIMES:
        settings = Settings(
            home=tmp / f"home-{rt}",
            database_url=pg.fresh_database(f"bench_ingest_{rt}"),
            batch_size=cfg.batch_size,
            cpu_runtime=rt,
        )
        runs[rt] = _ingest_once(corpus, settings)
    after = {rt: raw_forward(cfg.batch_size, cfg.forward_batches - half, 0, rt) for rt in reversed(RUNTIMES)}
    return {rt: Measured(*runs[rt], before[rt] + after[rt], cfg.batch_size) for rt in RUNTIMES}


def side_by_side(ms: dict[str, Measured]) -> list[Row]:
    """Per runtime: raw forward, the image stage (its ratio to PyTorch's and to its own raw
    forward: the pipeline efficiency), the caption stage and the whole ingest."""

    def rates(m: Measured) -> tuple[float, float, float, float]:
        raw = m.batch_size / (stats(m.forward.wall).median_ms / 1000)
        img = m.report.images_encoded / m.split.images if m.split.images else float("nan")
        txt = m.report.texts_encoded / m.split.texts if m.split.texts else float("nan")
        return raw, img, txt, (m.report.posts_new + m.report.posts_updated) / m.wall

    base = rates(ms["torch"])
    rows: list[Row] = []
    for rt, m in ms.items():
        raw, img, txt, e2e = rates(m)
        rows.append(
            {
                "CPU runtime": {"torch": "PyTorch eager (before)", "onnx": "ONNX Runtime (now)"}[rt],
                "raw forward img/s": raw,
                "image stage img/s": img,
                "image stage x PyTorch": img / base[1],
                "pipeline efficiency": img / raw,
                "caption stage /s": txt,
                "captions x PyTorch": txt / base[2],
                "ingest posts/s": e2e,
            }
        )
    return rows


def run(cfg: IngestConfig, tmp: Path, pg: EmbeddedPg) -> Section:
    section = Section("ingest")
    with stopwatch() as sw_demo:
        corpus = build_demo(tmp / "corpus", influencers_per_category=cfg.influencers_per_category, seed=cfg.seed)
    load_s = preload_encoders()
    ms = measure(cfg, corpus, tmp, pg)
    m, r = ms["onnx"], ms["onnx"].report
    half = cfg.forward_batches // 2
    rows = side_by_side(ms)
    section.tables.append(Table("PyTorch eager vs ONNX Runtime on the CPU, same corpus, same run", rows))
    section.tables.append(
        Table(
            f"ingest stages (ONNX Runtime): {r.posts_new + r.posts_updated} posts, {r.accounts_new} accounts",
            stage_rows(r, m.wall, m.split),
        )
    )
    section.tables.append(
        Table(
            "encoder efficiency, ONNX Runtime (ratios over its raw forward rate, by wall time and by CPU time)",
            efficiency_rows(m),
        )
    )
    cpu_only = Settings().device == "cpu" or not torch.cuda.is_available()
    x, eff = float(rows[1]["image stage x PyTorch"]), float(rows[1]["pipeline efficiency"])  # type: ignore[arg-type]
    met = x >= TARGET_X and eff >= TARGET_EFFICIENCY if cpu_only and not cfg.quick else None
    section.notes += [
        f"corpus built in {sw_demo[0]:.1f} s; encoders preloaded in {load_s:.1f} s (not in ingest time)",
        f"raw forward: batches of {cfg.batch_size} random 224x224 tensors, {len(m.forward.wall)} timed per runtime "
        f"after 1 warm-up, half before the two ingests and half after (ONNX Runtime "
        f"{_rate(m.forward.wall[:half], cfg.batch_size):.1f} then {_rate(m.forward.wall[half:], cfg.batch_size):.1f} "
        "images/s): a gap between them means the machine's load changed",
        f"targets (CPU, full run): image stage >= {TARGET_X:.0f}x PyTorch's ({x:.1f}x), pipeline efficiency >= "
        f"{TARGET_EFFICIENCY} ({eff:.2f}): " + {True: "met", False: "MISSED", None: "not checked"}[met],
        "encode split into images/captions from the progress callback; index "
        + (f"{r.index.kind} over {r.index.size} influencers" if r.index is not None else "not built"),
        "CPU time is this process's (all threads), not the database server's",
    ]
    if r.rejected:
        section.notes.append(f"{len(r.rejected)} rows rejected (see JSON)")
    section.details = {
        rt: {
            "report": mm.report.to_dict(),
            "wall_s": mm.wall,
            "cpu_s": mm.cpu,
            "encode_split": mm.split.__dict__,
            "raw_forward_wall_s": mm.forward.wall.tolist(),
            "raw_forward_cpu_s": mm.forward.cpu,
        }
        for rt, mm in ms.items()
    }
    section.details.update({"encoder_load_s": load_s, "config": cfg.__dict__, "targets_met": met})
    return section
