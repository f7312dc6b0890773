"""The `congruence` command line: one subcommand per job, each a plain function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from congruence.cli.account import add_parser as add_account_parser
from congruence.cli.account_metrics import add_parser as add_metrics_parser
from congruence.cli.demo import add_parser as add_demo_parser
from congruence.cli.engagement import add_parsers as add_engagement_parsers
from congruence.cli.explain import add_parser as add_explain_parser
from congruence.cli.export import add_parser as add_export_parser
from congruence.cli.lists import add_parser as add_lists_parser
from congruence.cli.parser import CommandParser, error_text
from congruence.cli.safety import add_parser as add_safety_parser
from congruence.cli.searches import add_parser as add_searches_parser
from congruence.cli.serve import add_parsers as add_serve_parsers
from congruence.cli.shards import add_parser as add_shards_parser
from congruence.cli.training import add_parsers as add_training_parsers
from congruence.core.errors import CongruenceError
from congruence.core.progress import ProgressBoard, ProgressStyle, current_board, set_board
from congruence.core.settings import Settings, load_settings

if TYPE_CHECKING:  # the engine loads torch and FAISS: imported by the commands that use it
    from congruence.search.collab_rank import Signals
    from congruence.search.engine import Engine
    from congruence.search.snapshot import Snapshot

logger = logging.getLogger("congruence")
Command = Callable[[argparse.Namespace, Settings], int]


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


ENCODE_LABELS = {"images": ("encoding images", "images"), "texts": ("encoding captions", "captions")}


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.cli.formats import source_of
    from congruence.indexer.ingest import ingest

    folder, read = source_of(args)  # the corpus folder, an Instaloader folder, or a posts table
    from congruence.cli.account_metrics import metrics_summary
    from congruence.indexer.account_metrics.compute import check_n_last
    from congruence.training.deploy import in_service

    n_last = getattr(args, "er_posts", None)
    if n_last is not None:
        check_n_last(n_last)  # before anything is stored
    board = current_board()
    report = ingest(
        folder,
        settings,
        progress=board.stage_callback(ENCODE_LABELS),
        spaces=in_service(settings),
        ray_address=args.ray_address,
        read=read,
        metrics_last_n=n_last,
    )
    board.close()
    if report.exit_code != 1:  # the brand-safety screen of what was stored (incremental)
        from congruence.cli.safety import run_screen

        run_screen(settings, quiet=args.json)
    if args.json:
        _out(report.to_dict())
    else:
        print(
            f"accounts: {report.accounts_new} new, {report.accounts_updated} updated; "
            f"{report.follower_snapshots} follower snapshots stored"
        )
        print(f"posts: {report.posts_new} new, {report.posts_updated} updated")
        print(
            f"encoded: {report.images_encoded} images, {report.texts_encoded} captions; "
            f"pooled {report.accounts_pooled} accounts"
        )
        if report.metrics is not None:
            print(metrics_summary(report.metrics))
        if report.index is not None:
            print(f"index: {report.index.size} influencers ({report.index.kind}, {report.index.reason})")
        if report.rejected:
            print(f"rejected {len(report.rejected)} rows:", file=sys.stderr)
            for e in report.rejected:
                print(f"  {e}", file=sys.stderr)
    return report.exit_code


def _filters(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from congruence.cli.account_metrics import metric_bounds
    from congruence.cli.collab_filters import collab_filter_kwargs
    from congruence.cli.list_filters import list_filter_kwargs
    from congruence.cli.safety import safety_filter_kwargs
    from congruence.search.filters import Filters

    return Filters.make(
        args.category,
        args.min_followers,
        args.max_followers,
        micro=args.micro,
        **safety_filter_kwargs(args),
        metrics=metric_bounds(args),
        **collab_filter_kwargs(args),
        **list_filter_kwargs(args),
    )


def _print_hits(
    hits: list,
    as_json: bool,
    engine: Engine | None = None,
    warnings: Sequence[str] = (),
    ranking: str = "",
    brand: str | None = None,
) -> None:
    """The hits as a table, or as JSON (with each account's brand-safety screen and metrics when
    ``engine``; and the campaign lists of ``brand`` holding it, ``in_lists``); ``warnings``
    (``Filters.warnings``) on stderr, and in the JSON; ``ranking`` (which signals served) in the
    JSON, and on stderr under the table."""
    from congruence.cli.account_metrics import metrics_cell, with_metrics
    from congruence.cli.collab_filters import print_warnings
    from congruence.cli.lists import in_lists_cell, with_in_lists
    from congruence.cli.safety import hits_with_safety

    if engine is not None:
        with engine.reading() as store:
            data = with_in_lists(store, with_metrics(store, hits_with_safety(store, hits)), brand)
    else:
        data = [h.to_dict() for h in hits]
    print_warnings(warnings)
    if as_json:
        _out({"data": data, "count": len(hits), "warnings": list(warnings), "ranking": ranking})
        return
    if ranking:
        print(f"ranking: {ranking}", file=sys.stderr)
    if not hits:
        print("no influencers pass these filters")
        return
    print(f"{'rank':>4}  {'influencer':<28} {'category':<12} {'followers':>9}  score  flagged  engagement")
    for h, d in zip(hits, data, strict=True):
        fol = f"{h.followers:,}" if h.followers is not None else "?"
        s = d.get("safety")
        flagged = f"{s['flagged_posts']}/{s['screened_posts']}" if isinstance(s, dict) else "-"
        print(
            f"{h.rank:>4}  {h.influencer_id[:28]:<28} {h.category[:12]:<12} {fol:>9}  {h.score:.3f}  "
            f"{flagged:<7}  {metrics_cell(d)}{in_lists_cell(d)}"
        )


def _ranking(engine: Engine, snap: Snapshot, used: Signals) -> str:
    """How a list was scored, in words: the snapshot's ranking and the signals that served."""
    return f"{engine.ranking(snap)}; signals: {used.describe()}"


def cmd_match(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.cli.engine import open_engine

    if bool(args.brand) == bool(args.images or args.text):
        print("error: give either --brand ID, or --images/--text for a brand not in the corpus", file=sys.stderr)
        return 1
    from congruence.cli.feedback import feedback_of

    filters, feedback = _filters(args), feedback_of(args)
    with open_engine(settings) as engine:
        snap = engine.current()  # one snapshot answers and says why the filters may give little
        if args.brand:
            hits = engine.match_brand(args.brand, args.k, filters, feedback=feedback, snap=snap, signals=args.signals)
            used = engine.signals(snap, args.signals, brand_id=args.brand, feedback=feedback)
        else:
            from congruence.encoders.images import read_image

            images = [read_image(Path(p))[0] for p in args.images or []]
            query = engine.describe_new(images, args.text or "", snap)
            hits = engine.match_query(query, args.k, filters, feedback=feedback, snap=snap, signals=args.signals)
            used = engine.signals(snap, args.signals, feedback=feedback)
        warnings = filters.warnings(snap.collabs)
        _print_hits(hits, args.json, engine, warnings, _ranking(engine, snap, used), args.brand)
    return 0


def cmd_similar(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.cli.engine import open_engine
    from congruence.cli.feedback import feedback_of

    filters = _filters(args)
    with open_engine(settings) as engine:
        snap = engine.current()
        feedback = feedback_of(args)
        hits = engine.similar(args.influencer, args.k, filters, feedback=feedback, snap=snap, signals=args.signals)
        used = engine.signals(snap, args.signals, seeds=args.influencer, feedback=feedback)
        _print_hits(hits, args.json, engine, filters.warnings(snap.collabs), _ranking(engine, snap, used))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.cli.engine import open_engine
    from congruence.search.status import status

    with open_engine(settings, publish=False) as engine:
        st = status(engine).to_dict()
    if args.json:
        _out(st)
    else:
        for key, value in st.items():
            print(f"{key}: {json.dumps(value, default=str) if isinstance(value, dict) else value}")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.indexer.maintenance import delete_accounts
    from congruence.training.deploy import in_service

    wanted = list(dict.fromkeys(args.accounts))
    gone = delete_accounts(settings, wanted, in_service(settings))
    gone_set = set(gone)
    missing = [a for a in wanted if a not in gone_set]
    if args.json:
        _out({"deleted": len(gone), "not_found": missing})
    else:
        print(f"deleted {len(gone)} account{'' if len(gone) == 1 else 's'}")
    if missing and not args.missing_ok:  # like rm: the others are deleted, the status says some were not
        print(f"error: no such account: {', '.join(map(repr, missing))}", file=sys.stderr)
        return 1
    return 0


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=20, help="number of influencers (default 20)")
    p.add_argument("--category", help="only influencers of this category")
    p.add_argument("--min-followers", type=int)
    p.add_argument("--max-followers", type=int)
    p.add_argument("--micro", action="store_true", help="micro-influencers only: 5,000-100,000 followers")
    p.add_argument("--json", action="store_true", help='print {"data": [...], "count": N, "warnings": [...]}')
    from congruence.cli.account_metrics import metric_args
    from congruence.cli.collab_filters import collab_args, signals_arg
    from congruence.cli.feedback import feedback_args
    from congruence.cli.list_filters import list_args
    from congruence.cli.safety import safety_args

    safety_args(p)
    metric_args(p)
    collab_args(p)
    list_args(p)
    signals_arg(p)
    feedback_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="congruence", description="Match brands with micro-influencers.", quiet_default=False)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "ingest",
        help="validate, store, encode, pool and index a corpus folder (or an Instaloader "
        "folder, or CSV/Parquet tables); recompute the account metrics",
    )
    p.add_argument("folder", help="the corpus folder; with --format table, the posts table")
    from congruence.cli.account_metrics import er_posts_arg
    from congruence.cli.formats import format_args

    format_args(p)
    er_posts_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--ray-address", help="encode on this Ray cluster: auto, ray://HOST:PORT (needs congruence[ray])")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("match", help="ranked influencers for a brand")
    p.add_argument("--brand", help="id of a brand in the corpus")
    p.add_argument("--images", nargs="+", help="images of a brand not in the corpus")
    p.add_argument("--text", help="description of a brand not in the corpus")
    _query_args(p)
    p.set_defaults(func=cmd_match)
    p = sub.add_parser("similar", help="influencers similar to one you know, or to several")
    p.add_argument(
        "--influencer", required=True, nargs="+", help="one influencer id, or several (look-alikes of the set)"
    )
    _query_args(p)
    p.set_defaults(func=cmd_similar)
    p = sub.add_parser("status", help="counts, models, index state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("delete", help="remove accounts (with their posts and vectors)")
    p.add_argument("accounts", nargs="+")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "-f", "--missing-ok", action="store_true", help="ids not in the store are no error (exit 0, like rm -f)"
    )
    p.set_defaults(func=cmd_delete)
    add_training_parsers(sub)
    add_explain_parser(sub)
    add_safety_parser(sub)
    add_metrics_parser(sub)
    add_account_parser(sub)
    add_lists_parser(sub)
    add_searches_parser(sub, _query_args, _filters, _ranking)
    add_engagement_parsers(sub)
    add_export_parser(sub)
    add_serve_parsers(sub)
    add_shards_parser(sub)
    add_demo_parser(sub, cmd_ingest, cmd_match)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    set_board(ProgressBoard(ProgressStyle.for_stream(sys.stderr, quiet=args.quiet)))
    try:
        settings = load_settings()
        code = int(args.func(args, settings))
        sys.stdout.flush()  # into a pipe, the last block goes out here: a reader that left shows now
        return code
    except CongruenceError as e:
        print(f"error: {error_text(e, args)}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `congruence ... | head`: the reader left; say nothing more
        if not _stdout_is_a_pipe():
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would raise again
        return 141
    finally:
        current_board().close()
        set_board(None)


def _stdout_is_a_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
        return False


if __name__ == "__main__":
    sys.exit(main())
