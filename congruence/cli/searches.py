"""`congruence search ...`: saved searches (docs/saved-searches.md), as `/v1/searches` has them."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.search.collab_rank import Signals
    from congruence.search.engine import BrandQuery, Engine
    from congruence.search.filters import Filters
    from congruence.search.saved_searches import RunResult, SearchSpec
    from congruence.search.snapshot import Snapshot
    from congruence.store.saved_searches import Mode

# what `match` builds its search with, handed over by cli.main (which imports this module)
FiltersOf = Callable[[argparse.Namespace], "Filters"]
RankingOf = Callable[["Engine", "Snapshot", "Signals"], str]

_FIELDS = {"name": "NAME", "brand_id": "--brand"}


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def spec_of(args: argparse.Namespace, filters_of: FiltersOf) -> SearchSpec:
    """The search `match` would run with these options, from the same parsing code
    (``filters_of``: `match`'s own, ``cli.main._filters``)."""
    from congruence.cli.feedback import feedback_of
    from congruence.search.saved_searches import SearchSpec

    filters, feedback = filters_of(args), feedback_of(args)  # match's checks, match's messages
    return SearchSpec.typed(args.brand, args, args.k, args.signals).same_as(filters, feedback)


def _new_brand(engine: Engine, args: argparse.Namespace) -> BrandQuery | None:
    """A brand not in the corpus, described now (its vectors are what is kept)."""
    if args.brand:
        return None
    from congruence.encoders.images import read_image

    images = [read_image(Path(p))[0] for p in args.images or []]
    return engine.describe_new(images, args.text or "")


def cmd_save(args: argparse.Namespace, settings: Settings, filters_of: FiltersOf) -> int:
    from congruence.cli.engine import open_engine
    from congruence.cli.lists import actor
    from congruence.core.errors import Conflict
    from congruence.search.saved_searches import save_search

    if bool(args.brand) == bool(args.images or args.text):
        print("error: give either --brand ID, or --images/--text for a brand not in the corpus", file=sys.stderr)
        return 1
    spec = spec_of(args, filters_of)  # bad options fail here, before the engine opens
    mode: Mode = "update" if args.update else "replace" if args.replace else "create"
    with open_engine(settings) as engine:
        try:
            saved = save_search(engine, args.name, spec, _new_brand(engine, args), actor(args), mode)
        except Conflict as e:
            raise Conflict(f"{e.message}: replace it (--replace), or update it and keep its runs (--update)") from e
    if args.json:
        _out(saved.to_dict())
    else:
        what = f"brand {saved.brand_id!r}" if saved.brand_id else "a new brand (its encodings are kept)"
        done = "updated" if mode == "update" else "saved"
        print(f"{done} search {saved.name!r}: {what}, k {spec.k}; run it with `congruence search run {saved.name}`")
    return 0


def _hits_data(engine: Engine, result: RunResult) -> list[dict[str, Any]]:
    """The hits as `match --json` prints them, each with ``new`` and ``new_reason``."""
    from congruence.cli.account_metrics import with_metrics
    from congruence.cli.lists import with_in_lists
    from congruence.cli.safety import hits_with_safety

    with engine.reading() as store:
        data = with_in_lists(store, with_metrics(store, hits_with_safety(store, result.hits)), result.spec.brand_id)
    return [d | {"new": new, "new_reason": why} for d, (new, why) in zip(data, result.marks, strict=True)]


def _previous(result: RunResult) -> dict[str, Any] | None:
    return None if result.previous is None else result.previous.to_dict()


def _print_table(result: RunResult, data: list[dict[str, Any]]) -> None:
    from congruence.cli.account_metrics import metrics_cell
    from congruence.cli.lists import in_lists_cell

    prev = result.previous
    if prev is None:
        print(f"first run of {result.search.name!r}: nothing to compare with yet")
    else:
        fresh = sum(1 for new, _ in result.marks if new)
        when = f"{prev.ran_at:%Y-%m-%d %H:%M}, {len(prev.influencer_ids)} influencers"
        print(f"{fresh} new since the previous run ({when})")
    if result.gone:
        print(f"gone (deleted since the previous run): {', '.join(result.gone)}")
    if not data:
        print("no influencers pass these filters")
        return
    print(f"{'rank':>4}  {'new':<14} {'influencer':<28} {'category':<12} {'followers':>9}  score  engagement")
    for d in data:
        fol = f"{d['followers']:,}" if d["followers"] is not None else "?"
        new = d["new_reason"] or ""
        print(
            f"{d['rank']:>4}  {new:<14} {d['influencer_id'][:28]:<28} {d['category'][:12]:<12} {fol:>9}  "
            f"{d['score']:.3f}  {metrics_cell(d)}{in_lists_cell(d)}"
        )


def cmd_run(args: argparse.Namespace, settings: Settings, ranking_of: RankingOf) -> int:
    from congruence.cli.collab_filters import print_warnings
    from congruence.cli.engine import open_engine
    from congruence.search.saved_searches import run_search

    with open_engine(settings) as engine:
        result = run_search(engine, args.name)
        ranking = ranking_of(engine, result.snap, result.used)
        data = _hits_data(engine, result)
    print_warnings(result.warnings)
    if args.json:
        _out(
            {
                "data": data,
                "count": len(data),
                "warnings": result.warnings,
                "ranking": ranking,
                "gone": result.gone,
                "previous_run": _previous(result),
            }
        )
        return 0
    print(f"ranking: {ranking}", file=sys.stderr)
    _print_table(result, data)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.search.saved_search_options import DEFAULT_K
    from congruence.store import saved_searches
    from congruence.store.records import Store

    with Store.open(settings) as store:
        rows = saved_searches.all_searches(store)
    if args.json:
        _out({"data": [s.to_dict() for s in rows], "count": len(rows)})
        return 0
    if not rows:
        print("no saved search yet (congruence search save NAME --brand B ...)")
    for s in rows:
        what = f"brand {s.brand_id}" if s.brand_id else "a new brand"
        last = f"last run {s.last_run_at:%Y-%m-%d %H:%M}" if s.last_run_at else "never run"
        print(f"{s.name}  {what}  k {s.options.get('k', DEFAULT_K)}  {s.runs} run{'' if s.runs == 1 else 's'}, {last}")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import saved_searches
    from congruence.store.records import Store

    with Store.open(settings) as store:
        saved_searches.delete(store, args.name)
    if args.json:
        _out({"deleted": args.name})
    else:
        print(f"deleted saved search {args.name!r}")
    return 0


def add_parser(
    sub: Subcommands,
    query_args: Callable[[argparse.ArgumentParser], None],
    filters_of: FiltersOf,
    ranking_of: RankingOf,
) -> None:
    """``search save|run|list|delete``; ``save`` takes `match`'s options (``query_args``) and
    builds its filters as `match` does (``filters_of``); ``run`` says how it ranked as `match`
    says it (``ranking_of``)."""
    group = sub.add_parser("search", help="saved searches: rerun a match, see who is new (docs/saved-searches.md)")
    ssub = group.add_subparsers(dest="search_command", required=True)
    p = ssub.add_parser("save", help="save a match's brand, filters, feedback and k under a name")
    p.add_argument(
        "name", metavar="NAME", help="the search's name (1 to 100 characters, no '/', not '.' or '..', no end spaces)"
    )
    p.add_argument("--brand", help="id of a brand in the corpus")
    p.add_argument("--images", nargs="+", help="images of a brand not in the corpus (their encodings are kept)")
    p.add_argument("--text", help="description of a brand not in the corpus")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--replace", action="store_true", help="replace a saved search of this name (its runs go)")
    how.add_argument(
        "--update", action="store_true", help="change the options of the saved search of this name (its runs stay)"
    )
    query_args(p)
    p.set_defaults(func=functools.partial(cmd_save, filters_of=filters_of), field_options=_FIELDS, by=None)
    p = ssub.add_parser("run", help="rerun a saved search: who is new since its previous run, who is gone")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--json", action="store_true", help='print {"data", "count", "warnings", "ranking", "gone", "previous_run"}'
    )
    p.set_defaults(func=functools.partial(cmd_run, ranking_of=ranking_of), field_options=_FIELDS)
    p = ssub.add_parser("list", help="the saved searches, by name")
    p.add_argument("--json", action="store_true", help='print {"data": [searches], "count": N}')
    p.set_defaults(func=cmd_list)
    p = ssub.add_parser("delete", help="delete a saved search and its runs")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_delete, field_options=_FIELDS)
