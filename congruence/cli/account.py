"""`congruence account ID`: one account's figures, its metrics, and who it worked with (the
collaboration graph, docs/collaborations.md), as `GET /v1/accounts/{id}` gives them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.store.account_metrics import AccountMetrics
    from congruence.store.collaborations import AccountCollaborations
    from congruence.store.follower_history import Snapshot
    from congruence.store.rows import AccountRow, Collaboration


def account_dict(
    acc: AccountRow, metrics: AccountMetrics | None, collabs: AccountCollaborations, history: Sequence[Snapshot]
) -> dict[str, Any]:
    """The account as `--json` prints it: the fields of `GET /v1/accounts/{id}`, without its posts."""
    return {
        "id": acc.id,
        "kind": acc.kind,
        "handle": acc.handle,
        "category": acc.category,
        "followers": acc.followers,
        "n_posts": acc.posts,
        "metrics": metrics.to_dict() if metrics is not None else None,
        "follower_history": [s.to_dict() for s in history],
        **collabs.to_dict(),
    }


def _metrics_line(m: AccountMetrics | None) -> str:
    if m is None:
        return "metrics: not computed yet (run `congruence metrics`; ingest does it)"
    er = "unknown" if m.engagement_rate is None else f"{100 * m.engagement_rate:.2f} %"
    ppw = "unknown" if m.posts_per_week is None else f"{m.posts_per_week:.1f}"
    share = "unknown" if m.sponsored_share is None else f"{100 * m.sponsored_share:.0f} %"
    ratio = "n/a" if m.sponsored_ratio is None else f"{m.sponsored_ratio:.2f}x"
    flags = ", ".join(sorted({f.signal for f in m.flags})) or "none"
    growth = "unknown" if m.growth_monthly is None else f"{100 * m.growth_monthly:+.1f} % a month"
    return (
        f"metrics: engagement rate {er} (newest {m.er_posts} posts), {ppw} posts/week, {share} sponsored, "
        f"sponsored vs organic {ratio}, follower growth {growth}; authenticity flags: {flags}"
    )


def _history_lines(history: Sequence[Snapshot]) -> None:
    if not history:
        print("follower history: none (no ingest has seen a follower count)")
        return
    shown = ", the newest 12 shown" if len(history) > 12 else ""
    print(f"follower history ({len(history)} count{'' if len(history) == 1 else 's'}{shown}):")
    for s in history[-12:]:
        seen = f", seen again until {_utc_day(s.last_seen)}" if s.last_seen is not None else ""
        print(f"  {_utc_day(s.at)}  {s.followers:>12,}  ({s.source}{seen})")


def _utc_day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def _day(e: Collaboration, which: str) -> str:
    at = getattr(e, which)
    return at.date().isoformat() if at is not None else "-"


def _edge_table(title: str, edges: Sequence[Collaboration], total: int, who: str) -> None:
    """``edges`` as a table; ``who``: 'handle' (the handle named, and the account it is) or
    'account' (the account whose posts name it)."""
    shown = f", the first {len(edges)}" if len(edges) < total else ""
    print(f"\n{title} ({total}{shown}):")
    if not edges:
        print("  none")
        return
    head = ("handle", "account") if who == "handle" else ("account", "")
    print(_row(head[0], "kind", "posts", "sponsored", "first", "last", head[1]))
    for e in edges:
        name, other = (e.handle, e.target_id or "-") if who == "handle" else (e.account_id, "")
        print(_row(name, e.kind, e.posts, e.sponsored_posts, _day(e, "first_at"), _day(e, "last_at"), other))


def _row(name: str, kind: str, posts: object, sponsored: object, first: str, last: str, other: str) -> str:
    return f"  {name[:28]:<28} {kind:<8} {posts:>5} {sponsored:>9}  {first:<10}  {last:<10}  {other}".rstrip()


def print_account(
    acc: AccountRow, metrics: AccountMetrics | None, collabs: AccountCollaborations, history: Sequence[Snapshot]
) -> None:
    followers = f"{acc.followers:,} followers" if acc.followers is not None else "followers unknown"
    print(f"@{acc.handle} ({acc.id})")
    print(f"{acc.kind} · {acc.category or 'no category'} · {followers} · {acc.posts} posts")
    print(_metrics_line(metrics))
    _history_lines(history)
    print(f"worked with {collabs.handles} handle{'' if collabs.handles == 1 else 's'} (tags, sponsors, known matches)")
    _edge_table("worked with", collabs.worked_with, collabs.worked_with_total, "handle")
    if acc.kind == "brand" or collabs.tagged_by_total:
        _edge_table("tagged by (or sponsoring)", collabs.tagged_by, collabs.tagged_by_total, "account")
    if acc.kind == "brand" or collabs.partners_total:
        _edge_table("known partners", collabs.partners, collabs.partners_total, "account")


def cmd_account(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import account_metrics as metrics_store
    from congruence.store import follower_history
    from congruence.store.collaborations import account_collaborations
    from congruence.store.records import Store

    with Store.open(settings) as store:
        acc = store.account(args.id)  # NotFound: "unknown account 'x'"
        metrics = metrics_store.read(store, [acc.id]).get(acc.id)
        collabs = account_collaborations(store, acc.id, args.limit)
        history = follower_history.history(store, acc.id)
    if args.json:
        sys.stdout.write(json.dumps(account_dict(acc, metrics, collabs, history), ensure_ascii=False) + "\n")
    else:
        print_account(acc, metrics, collabs, history)
    return 0


def add_parser(sub: Subcommands) -> None:
    p = sub.add_parser(
        "account",
        help="one account: its figures, metrics and who it worked with (a brand: who tagged it, its known partners)",
    )
    p.add_argument("id", help="the account's id")
    p.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N edges per list, most posts first (default 100)"
    )
    p.add_argument("--json", action="store_true", help="print the account as one JSON object")
    p.set_defaults(func=cmd_account)
