"""`congruence export`: the top-k influencers of many brands, written to one file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from congruence.core.settings import Settings


def _progress_bar() -> Callable[[int, int], None]:
    from tqdm import tqdm

    bar = tqdm(desc="exporting", unit="brand", file=sys.stderr, disable=None)  # None: hidden when not a terminal

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.search.engine import Engine
    from congruence.search.export import ExportSpec, read_brand_file, run_export
    from congruence.search.filters import Filters

    filters = Filters.make(args.category, args.min_followers, args.max_followers, micro=args.micro)
    with Engine(settings) as engine:
        brands = None if args.brands == "all" else read_brand_file(Path(args.brands), engine.store)
        spec = ExportSpec(brands, args.k, args.format, filters)
        report = run_export(engine, spec, Path(args.out), progress=None if args.json else _progress_bar(),
                            batch_brands=args.batch_brands, restart=args.restart, ray_address=args.ray_address)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
        return 0
    resumed = f", {report.resumed_brands} resumed from an interrupted run" if report.resumed_brands else ""
    print(f"wrote {report.rows:,} rows for {report.brands:,} brands to {report.path} "
          f"in {report.seconds:.1f} s{resumed}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} brands:", file=sys.stderr)
        for brand, reason in report.skipped:
            print(f"  {brand}: {reason}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    p.add_argument("--batch-brands", type=int, default=256, help="brands per batch and per chunk (default 256)")
    p.add_argument("--restart", action="store_true",
                   help="discard the chunks of an interrupted export of other options instead of refusing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--ray-address", help="rank on this Ray cluster: auto, ray://HOST:PORT (needs congruence[ray])")
    p.set_defaults(func=cmd_export)
