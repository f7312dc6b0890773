"""`congruence export`: the top-k influencers of many brands, written to one file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from congruence.cli.parser import Subcommands
from congruence.core.errors import InvalidInput
from congruence.core.progress import current_board
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.search.engine import Engine


def _progress() -> Callable[[int, int], None]:
    """(done, total) brands -> the command's progress board (a bar, or lines with rate and ETA)."""
    board = current_board()

    def update(done: int, total: int) -> None:
        task = board.task("export", "exporting", "brands", total)
        task.advance_to(done)
        if done >= total:
            task.close()

    return update


@contextmanager
def _engine(settings: Settings, ray_address: str | None, shards: int) -> Iterator[Engine]:
    """The export's engine: one process's, or, with ``shards``, an ingress whose shards are on
    Ray Serve at ``ray_address`` (``search.ray_export.shards_on_serve``: running, or started
    for this export), so that the rank actors hold no account."""
    from congruence.cli.engine import open_engine

    if not shards:
        with open_engine(settings) as engine:
            yield engine
        return
    if shards < 1:
        raise InvalidInput(f"must be at least 1, got {shards}", field="shards")
    if ray_address is None:
        raise InvalidInput("needs --ray-address: the Ray cluster whose Serve runs the shards", field="shards")
    from congruence.cli.shards import check_published
    from congruence.search.ray_export import shards_on_serve
    from congruence.search.shards import ShardedEngine
    from congruence.training.deploy import publish_current

    publish_current(settings)  # the command is its own writer first, as open_engine is
    check_published(settings, shards)
    with shards_on_serve(ray_address, settings, shards) as clients, ShardedEngine(settings, clients) as engine:
        yield engine


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.cli.account_metrics import metric_bounds
    from congruence.cli.collab_filters import collab_filter_kwargs, print_warnings
    from congruence.cli.list_filters import list_filter_kwargs
    from congruence.cli.safety import safety_filter_kwargs
    from congruence.search.export import ExportSpec, read_brand_file, run_export
    from congruence.search.filters import Filters

    filters = Filters.make(
        args.category,
        args.min_followers,
        args.max_followers,
        micro=args.micro,
        **safety_filter_kwargs(args),
        metrics=metric_bounds(args),
        **collab_filter_kwargs(args),
        **list_filter_kwargs(args),
    )
    with _engine(settings, args.ray_address, args.shards) as engine:
        with engine.reading() as store:
            brands = None if args.brands == "all" else read_brand_file(Path(args.brands), store)
        spec = ExportSpec(brands, args.k, args.format, filters, args.signals)
        report = run_export(
            engine,
            spec,
            Path(args.out),
            progress=None if args.json else _progress(),
            batch_brands=args.batch_brands,
            restart=args.restart,
            ray_address=args.ray_address,
        )
    print_warnings(report.warnings)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
        return 0
    resumed = f", {report.resumed_brands} resumed from an interrupted run" if report.resumed_brands else ""
    print(
        f"wrote {report.rows:,} rows for {report.brands:,} brands to {report.path} in {report.seconds:.1f} s{resumed}"
    )
    if report.ray is not None:
        gpus = sorted({g for p in report.ray["placements"] for g in p["gpu_ids"]}, key=str)
        n = len(report.ray["placements"])
        print(
            f"ranked on Ray at {report.ray['address']}: {n} actor{'' if n == 1 else 's'}"
            + (f", GPUs {', '.join(map(str, gpus))}" if gpus else ", no GPU")
            + (f", against {report.ray['shards']} shards on Ray Serve" if report.ray["shards"] else "")
        )
    if report.skipped:
        print(f"skipped {len(report.skipped)} brands:", file=sys.stderr)
        for brand, reason in report.skipped:
            print(f"  {brand}: {reason}", file=sys.stderr)
    return 0


def add_parser(sub: Subcommands) -> None:
    from congruence.search.export import FORMATS

    p = sub.add_parser("export", help="top-k influencers of many brands, to a CSV, JSONL or Parquet file")
    p.add_argument("--brands", default="all", help="'all' (default), or a file of brand ids, one a line")
    p.add_argument("-k", type=int, default=100, help="influencers per brand (default 100)")
    p.add_argument("--format", choices=FORMATS, default="csv", help="file format (default csv)")
    p.add_argument("--out", required=True, help="file to write; <out>.parts/ holds the chunks until it is done")
    p.add_argument("--category", help="only influencers of this category")
    p.add_argument("--min-followers", type=int)
    p.add_argument("--max-followers", type=int)
    p.add_argument("--micro", action="store_true", help="micro-influencers only: 5,000-100,000 followers")
    from congruence.cli.account_metrics import metric_args
    from congruence.cli.collab_filters import collab_args, signals_arg
    from congruence.cli.list_filters import list_args
    from congruence.cli.safety import safety_args

    safety_args(p)
    metric_args(p)
    collab_args(p)
    list_args(p)
    signals_arg(p)
    p.add_argument("--batch-brands", type=int, default=256, help="brands per batch and per chunk (default 256)")
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard the chunks of an interrupted export of other options instead of refusing",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--ray-address",
        help="rank on this Ray cluster: auto, ray://HOST:PORT, HOST:PORT or local "
        "(needs congruence[ray]; see docs/scale-out.md)",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=0,
        help="with --ray-address: rank against the N shards on Ray Serve there (those `serve --shards N` runs, "
        "else started for the export), not a copy of the index in every actor",
    )
    p.set_defaults(func=cmd_export)
