"""`congruence metrics`, the metric filters of `match`, `similar` and `export`, and the
metrics each hit carries in `--json`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.indexer.account_metrics.recompute import MetricsReport
    from congruence.search.metric_filters import MetricBounds
    from congruence.store.records import Store


def rate(text: str) -> float:
    """A rate as a fraction ('0.02') or a percent ('2%')."""
    s = text.strip()
    try:
        return float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction (0.02) or a percent (2%), got {text!r}") from None


def metric_args(p: argparse.ArgumentParser) -> None:
    """--min-er, --max-er, --max-sponsored-share, --min-posts-per-week, --min-growth, --max-growth, --no-flags."""
    p.add_argument(
        "--min-er", type=rate, metavar="RATE", help="minimum engagement rate: a fraction (0.02) or a percent (2%%)"
    )
    p.add_argument("--max-er", type=rate, metavar="RATE", help="maximum engagement rate")
    p.add_argument(
        "--max-sponsored-share",
        type=rate,
        metavar="SHARE",
        help="maximum share of paid partnerships among the newest posts (0.2 or 20%%)",
    )
    p.add_argument("--min-posts-per-week", type=float, metavar="N", help="minimum posts per week")
    p.add_argument(
        "--min-growth",
        type=rate,
        metavar="RATE",
        help="minimum monthly follower growth: a fraction (0.02) or a percent (2%%; a loss: --min-growth=-5%%)",
    )
    p.add_argument("--max-growth", type=rate, metavar="RATE", help="maximum monthly follower growth")
    p.add_argument("--no-flags", action="store_true", help="only accounts with no authenticity flag")


def metric_bounds(args: argparse.Namespace) -> MetricBounds:
    from congruence.search.metric_filters import MetricBounds

    return MetricBounds.of(args)


def with_metrics(store: Store, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hits (as dicts) with each account's metrics (None: not computed yet)."""
    from congruence.store.account_metrics import read

    got = read(store, [d["influencer_id"] for d in data])
    return [d | {"metrics": got[d["influencer_id"]].to_dict() if d["influencer_id"] in got else None} for d in data]


def metrics_cell(d: dict[str, Any]) -> str:
    """'ER 3.1 % ⚑2' for the hits table: the engagement rate and the flags raised."""
    m = d.get("metrics")
    if not isinstance(m, dict) or m.get("engagement_rate") is None:
        return "-"
    flags = f" flags {len(m['flags'])}" if m["flags"] else ""
    return f"{100 * m['engagement_rate']:.1f} %{flags}"


def metrics_summary(report: MetricsReport) -> str:
    """One line of a metrics report: accounts, with an ER, changed, flagged per signal."""
    flagged = ", ".join(f"{s} {n}" for s, n in report.flagged.items())
    return (
        f"account metrics: {report.accounts} accounts ({report.with_er} with an engagement rate "
        f"over their newest {report.last_n} posts, {report.with_growth} with a follower growth), "
        f"{report.changed} changed; flagged: {flagged}"
    )


def cmd_metrics(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.indexer.account_metrics.recompute import recompute
    from congruence.store.records import Store

    with Store.open(settings) as store:
        report: MetricsReport = recompute(store, args.er_posts)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
        return 0
    print(metrics_summary(report))
    dirty = {k: v for k, v in report.dirty.items() if v}
    if dirty:
        print("unknown or dirty values (left out of the figures): " + ", ".join(f"{k} {v}" for k, v in dirty.items()))
    return 0


def er_posts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--er-posts",
        type=int,
        metavar="N",
        default=None,
        help="newest posts the engagement rate, posts per week and sponsored share use (default 12; "
        "remembered for later runs)",
    )


def add_parser(sub: Subcommands) -> None:
    p = sub.add_parser(
        "metrics",
        help="recompute account metrics: engagement rate, posts per week, sponsored "
        "share and ratio, authenticity flags (ingest runs it too)",
    )
    er_posts_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_metrics)
