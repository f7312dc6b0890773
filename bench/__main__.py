"""``python -m bench [--quick] [--only SECTION] [--out bench/results/NAME.json]``.

Sections are registered in ``SECTIONS`` (name, runner, needs PostgreSQL, runs by default).
The ranking sections (``ranking-photos``, ``ranking-photos-fine``, ``ranking-instagram``) train the congruence head
through the CLI and take minutes (plus a first ingest of a few minutes, cached under
bench/.cache), so they run only when named with ``--only``; so do ``encoder-rates`` (PyTorch vs
ONNX Runtime on real photos and captions), ``index-build`` (the index built from PostgreSQL,
stage by stage) and ``gpu`` (``--gpu``: the GPU check, bench/gpu_check.py). The exit status is 1 when a
section that checks targets misses one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Section, format_section, machine_info
from congruence.store.embedded_pg import EmbeddedPg, embedded_pg

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class RunContext:
    """What every section runner gets: the mode, a scratch folder, and the shared PostgreSQL
    (None unless a section that needs one is in the run)."""

    quick: bool
    tmp: Path
    pg: EmbeddedPg | None


@dataclass(frozen=True)
class SectionSpec:
    """One section of ``python -m bench``: its runner, whether it needs the shared embedded
    PostgreSQL, and whether it runs by default (the others run only when named with --only)."""

    name: str
    run: Callable[[RunContext], Section]
    needs_pg: bool = False
    default: bool = True


def _pg(ctx: RunContext) -> EmbeddedPg:
    assert ctx.pg is not None, "a section that needs PostgreSQL ran without it"
    return ctx.pg


# runners import their module when they run, so a run of one section loads only what it needs
def _ingest(ctx: RunContext) -> Section:
    from bench import ingest

    return ingest.run(ingest.IngestConfig.for_run(ctx.quick), ctx.tmp / "ingest", _pg(ctx))


def _match(ctx: RunContext) -> Section:
    from bench import retrieval

    return retrieval.run(retrieval.RetrievalConfig.for_run(ctx.quick))


def _index_scale(ctx: RunContext) -> Section:
    from bench import index_scale

    return index_scale.run(index_scale.ScaleConfig.for_run(ctx.quick))


def _pgvector(ctx: RunContext) -> Section:
    from bench import pgvector_cmp

    return pgvector_cmp.run(pgvector_cmp.PgConfig.for_run(ctx.quick), _pg(ctx))


def _match_e2e(ctx: RunContext) -> Section:
    from bench import match_e2e

    return match_e2e.run(match_e2e.E2eConfig.for_run(ctx.quick), ctx.tmp / "e2e")


def _explain(ctx: RunContext) -> Section:
    from bench import explain_latency

    return explain_latency.run(explain_latency.ExplainConfig.for_run(ctx.quick))


def _export(ctx: RunContext) -> Section:
    from bench import export_speed

    return export_speed.run(export_speed.ExportConfig.for_run(ctx.quick), ctx.tmp / "export")


def _feedback(ctx: RunContext) -> Section:
    from bench import feedback

    return feedback.run(feedback.FeedbackConfig(quick=ctx.quick))


def _feedback_seeds(ctx: RunContext) -> Section:
    from bench import feedback_seeds

    return feedback_seeds.run(ctx.quick)


def _caption_safety(ctx: RunContext) -> Section:
    from bench import caption_safety

    return caption_safety.run(ctx.quick)


def _ranking_photos(ctx: RunContext) -> Section:
    from bench import ranking_sections

    return ranking_sections.photos_section(ctx.quick)


def _ranking_photos_fine(ctx: RunContext) -> Section:
    from bench import ranking_sections

    return ranking_sections.fine_section(ctx.quick)


def _ranking_instagram(ctx: RunContext) -> Section:
    from bench import ranking_sections

    return ranking_sections.instagram_section(ctx.quick)


def _warm_start(ctx: RunContext) -> Section:
    from bench import warm_start

    return warm_start.run(ctx.quick)


def _encoder_rates(ctx: RunContext) -> Section:
    from bench import encoder_rates

    return encoder_rates.run(encoder_rates.RatesConfig.for_run(ctx.quick), ctx.tmp / "rates")


def _index_build(ctx: RunContext) -> Section:
    from bench import index_build

    return index_build.run(index_build.BuildConfig.for_run(ctx.quick), ctx.tmp / "index-build")


def _scale(ctx: RunContext) -> Section:
    from bench import scale

    return scale.run(scale.ScaleConfig.for_run(ctx.quick), ctx.tmp / "scale")


def _serve_calls(ctx: RunContext) -> Section:
    from bench import serve_calls

    return serve_calls.run(100 if ctx.quick else 300, ctx.tmp / "ray")


def _load(ctx: RunContext) -> Section:
    from bench import serve_load

    return serve_load.run(serve_load.ServeLoadConfig.for_run(ctx.quick), ctx.tmp / "serve-load")


def _head_memory(ctx: RunContext) -> Section:
    from bench import head_memory

    return head_memory.run(head_memory.MemoryBenchConfig.for_run(ctx.quick))


def _gpu(ctx: RunContext) -> Section:
    from bench import gpu_check
    from bench.common import Table

    cfg = gpu_check.GpuConfig.tiny() if ctx.quick else gpu_check.GpuConfig()
    doc = gpu_check.run(cfg, ctx.tmp / "gpu")
    rows = [
        {"part": name, **{k: v for k, v in part.items() if not isinstance(v, (dict, list)) and k != "traceback"}}
        for name, part in doc["parts"].items()
    ]
    section = Section(
        "gpu",
        [Table(f"GPU check ({doc['gpu'] or 'no CUDA device: CPU'})", rows)],
        details={**doc, "targets_met": None if all("error" not in p for p in doc["parts"].values()) else False},
    )
    return section


# in the order they run
SECTIONS: dict[str, SectionSpec] = {
    s.name: s
    for s in (
        SectionSpec("ingest", _ingest, needs_pg=True),
        SectionSpec("match", _match),
        SectionSpec("index-scale", _index_scale),
        SectionSpec("pgvector", _pgvector, needs_pg=True),
        SectionSpec("match-e2e", _match_e2e),
        SectionSpec("explain", _explain),
        SectionSpec("export", _export),
        SectionSpec("ranking-photos", _ranking_photos, default=False),
        SectionSpec("ranking-photos-fine", _ranking_photos_fine, default=False),
        SectionSpec("ranking-instagram", _ranking_instagram, default=False),
        SectionSpec("warm-start", _warm_start, default=False),
        SectionSpec("feedback", _feedback, default=False),
        SectionSpec("feedback-seeds", _feedback_seeds, default=False),
        SectionSpec("caption-safety", _caption_safety, default=False),
        SectionSpec("encoder-rates", _encoder_rates, default=False),
        SectionSpec("index-build", _index_build, default=False),
        SectionSpec("load", _load, default=False),
        SectionSpec("scale", _scale, default=False),
        SectionSpec("serve-calls", _serve_calls, default=False),
        SectionSpec("head-memory", _head_memory, default=False),
        SectionSpec("gpu", _gpu, default=False),
    )
}
DEFAULT_SECTIONS = tuple(name for name, spec in SECTIONS.items() if spec.default)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes; finishes in under 2 minutes")
    p.add_argument(
        "--only",
        choices=list(SECTIONS),
        action="append",
        help="run only this section (repeatable; the ranking-* sections run only when named)",
    )
    p.add_argument("--gpu", action="store_true", help="the GPU check alone (= --only gpu; bench/gpu_check.py)")
    p.add_argument("--out", type=Path, help="JSON result path (default bench/results/<mode>-<time>.json)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p.parse_args(argv)


def run_sections(names: Sequence[str], quick: bool) -> list[Section]:
    out: list[Section] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="congruence-bench-")))
        pg = stack.enter_context(embedded_pg(tmp / "pg")) if any(SECTIONS[n].needs_pg for n in names) else None
        ctx = RunContext(quick, tmp, pg)
        for name in names:
            t = time.perf_counter()
            section = SECTIONS[name].run(ctx)
            section.seconds = time.perf_counter() - t
            print(format_section(section), end="\n\n", flush=True)
            out.append(section)
    return out


def default_out(quick: bool) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return DEFAULT_OUT / f"{'quick' if quick else 'full'}-{stamp}.json"


def write_json(path: Path, quick: bool, machine: dict[str, object], sections: list[Section], wall: float) -> None:
    doc = {
        "mode": "quick" if quick else "full",
        "started_utc": machine.pop("started_utc", None),
        "wall_s": wall,
        "machine": machine,
        "sections": {s.name: asdict(s) for s in sections},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(message)s",
    )
    t0 = time.perf_counter()
    machine = machine_info()
    machine["started_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    gpu = f"GPU {machine['gpu_name']}" if machine["gpu_present"] else "no GPU"
    print(
        f"congruence bench ({'quick' if args.quick else 'full'}): {machine['cpu_model']}, "
        f"{machine['cpus_usable']} cores, {machine['ram_gb']} GB RAM, torch {machine['torch']}, "
        f"faiss {machine['faiss']}, {gpu}, load avg {machine['load_avg_1_5_15']}\n",
        flush=True,
    )
    only = (args.only or []) + (["gpu"] if args.gpu else [])
    names = [s for s in SECTIONS if s in only] if only else list(DEFAULT_SECTIONS)
    sections = run_sections(names, args.quick)
    wall = time.perf_counter() - t0
    machine["load_avg_end_1_5_15"] = machine_info()["load_avg_1_5_15"]
    out = args.out or default_out(args.quick)
    write_json(out, args.quick, machine, sections, wall)
    print(f"total {wall:.0f} s; results in {out}")
    missed = [s.name for s in sections if s.details.get("targets_met") is False]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
