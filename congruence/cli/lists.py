"""`congruence list ...`: campaign lists (docs/lists.md), as `/v1/lists` has them."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.store.records import Store

# how this command spells the fields the store's errors name
_FIELDS = {"name": "NAME", "influencer_ids": "ID", "version": "--expect-version"}


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def actor(args: argparse.Namespace) -> str:
    """Who the history names: --by, else the user running the command."""
    if args.by:
        return str(args.by)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "cli"


def cmd_all(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        rows = lists.all_lists(store, args.brand)
    if args.json:
        _out({"data": [x.to_dict() for x in rows], "count": len(rows)})
        return 0
    if not rows:
        print("no list yet (congruence list create NAME --brand B)")
    for x in rows:
        entries = f"{x.entries} entr{'y' if x.entries == 1 else 'ies'}"
        print(f"{x.name}  brand {x.brand_id}  {entries}  created {x.created_at:%Y-%m-%d}")
    return 0


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        lst = lists.create_list(store, args.name, args.brand, actor(args))
    if args.json:
        _out(lst.to_dict())
    else:
        print(f"created list {lst.name!r} of brand {lst.brand_id!r}")
    return 0


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        added, already = lists.add(store, args.name, args.ids, actor(args), args.status, args.note)
    if args.json:
        _out({"added": added, "already": already})
    else:
        print(f"added {len(added)} to {args.name!r}" + (f"; already in it: {', '.join(already)}" if already else ""))
    return 0


def cmd_set(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        e = lists.set_entry(store, args.name, args.id, actor(args), args.status, args.note, args.expect_version)
    if args.json:
        _out(e.to_dict())
    else:
        print(f"{e.influencer_id} in {args.name!r}: {e.status} (version {e.version})")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        gone = lists.remove(store, args.name, args.ids, actor(args))
    if args.json:
        _out({"removed": gone})
    else:
        print(f"removed {len(gone)} from {args.name!r}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import list_views, lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        lst = lists.get_list(store, args.name)
        rows = lists.entries(store, args.name)
        changes = list_views.history(store, args.name) if args.history else None
    if args.json:
        out: dict[str, Any] = {"list": lst.to_dict(), "data": [e.to_dict() for e in rows], "count": len(rows)}
        if changes is not None:
            out["history"] = [c.to_dict() for c in changes]
        _out(out)
        return 0
    print(f"list {lst.name!r} of brand {lst.brand_id!r}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    if rows:
        print(f"  {'influencer':<28} {'status':<10} {'v':>3}  {'updated':<16}  {'other lists':<24} note")
    for e in rows:
        who = e.influencer_id[:28] + (" (gone)" if e.gone else "")
        others = ", ".join(f"{o.list}:{o.status}" for o in e.other_lists) or "-"
        day = e.updated_at.strftime("%Y-%m-%d %H:%M")
        print(f"  {who:<28} {e.status:<10} {e.version:>3}  {day:<16}  {others[:24]:<24} {e.note}".rstrip())
    for c in changes or []:
        what = f"{c.old_status or '-'} -> {c.new_status or '-'}"
        note = f", note {c.new_note!r}" if c.new_note is not None and c.new_note != c.old_note else ""
        print(f"  {c.at:%Y-%m-%d %H:%M}  {c.actor}: {c.action} {c.influencer_id} ({what}{note})")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.search.list_export import export_list, format_of
    from congruence.store.records import Store

    out = Path(args.out)
    format_of(out)  # before the store is opened
    with Store.open(settings) as store:
        n = export_list(store, args.name, out)
    if args.json:
        _out({"rows": n, "out": str(out)})
    else:
        print(f"wrote {n} row{'' if n == 1 else 's'} to {out}")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import lists
    from congruence.store.records import Store

    with Store.open(settings) as store:
        lists.delete_list(store, args.name)
    if not args.json:
        print(f"deleted list {args.name!r}")
    else:
        _out({"deleted": args.name})
    return 0


def with_in_lists(store: Store, data: list[dict[str, Any]], brand: str | None) -> list[dict[str, Any]]:
    """Each hit (as JSON) with ``in_lists``: the lists of ``brand`` holding it (none without a brand)."""
    from congruence.store.list_views import in_lists

    listed = in_lists(store, brand, [d["influencer_id"] for d in data]) if brand else {}
    return [d | {"in_lists": [o.__dict__ for o in listed.get(d["influencer_id"], ())]} for d in data]


def in_lists_cell(d: dict[str, Any]) -> str:
    """The table's mark of a hit in a list of the brand: "  [in spring:contacted]"."""
    held = d.get("in_lists") or []
    marks = ", ".join(f"{o['list']}:{o['status']}" for o in held)
    return f"  [in {marks}]" if held else ""


def _command(sub: Subcommands, name: str, help: str, func: Any, by: bool = False) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("name", metavar="NAME", help="the list's name")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    if by:
        p.add_argument("--by", metavar="WHO", help="who the history names (default: cli:<your user name>)")
    p.set_defaults(func=func, field_options=_FIELDS, by=None)
    return p


def add_parser(sub: Subcommands) -> None:
    from congruence.store.lists import STATUSES

    group = sub.add_parser("list", help="campaign lists: influencers with a status and a note (docs/lists.md)")
    lsub = group.add_subparsers(dest="list_command", required=True)
    p = lsub.add_parser("all", help="every list (of a brand), by name")
    p.add_argument("--brand", help="only the lists of this brand")
    p.add_argument("--json", action="store_true", help='print {"data": [lists], "count": N}')
    p.set_defaults(func=cmd_all)
    p = _command(lsub, "create", "create an empty list of a brand", cmd_create, by=True)
    p.add_argument("--brand", required=True, help="the brand's id")
    p = _command(lsub, "add", "add influencers to a list", cmd_add, by=True)
    p.add_argument("ids", nargs="+", metavar="ID", help="influencer ids")
    p.add_argument("--status", default="prospect", help=f"one of {', '.join(STATUSES)} (default prospect)")
    p.add_argument("--note", default="", help="a note for each of them")
    p = _command(lsub, "set", "change an entry's status and/or note", cmd_set, by=True)
    p.add_argument("id", metavar="ID", help="the influencer's id")
    p.add_argument("--status", help=", ".join(STATUSES))
    p.add_argument("--note", help="the new note ('' clears it)")
    p.add_argument(
        "--expect-version", type=int, metavar="N", help="refuse (exit 1) unless the entry is still at version N"
    )
    p = _command(lsub, "remove", "remove influencers from a list (their history stays)", cmd_remove, by=True)
    p.add_argument("ids", nargs="+", metavar="ID", help="influencer ids")
    p = _command(lsub, "show", "a list's entries, with the other lists of its brand holding each", cmd_show)
    p.add_argument("--history", action="store_true", help="also who changed what, and when")
    p = _command(lsub, "export", "a list with each account's metrics and collaborations, to CSV or Parquet", cmd_export)
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.csv or FILE.parquet")
    _command(lsub, "delete", "delete a list, its entries and their history", cmd_delete)
