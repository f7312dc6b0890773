"""`congruence screen`, and the brand-safety flags of `match`, `similar` and `export`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.safety.screen import ScreenReport
    from congruence.search.hits import Hit
    from congruence.store.records import Store


def safety_args(p: argparse.ArgumentParser) -> None:
    """--brand-safe, --exclude-categories, --safe-last."""
    from congruence.safety.categories import NAMES
    from congruence.search.filters import SAFE_LAST

    p.add_argument(
        "--brand-safe",
        action="store_true",
        help=f"only influencers with no post flagged by the brand-safety screen among their newest "
        f"--safe-last posts ({', '.join(NAMES)})",
    )
    p.add_argument(
        "--exclude-categories",
        nargs="+",
        metavar="CATEGORY",
        default=None,
        help=f"only influencers with no post flagged in these categories among their newest --safe-last "
        f"posts: {', '.join(NAMES)}",
    )
    p.add_argument(
        "--safe-last", type=int, default=None, help=f"how many newest posts the two above look at (default {SAFE_LAST})"
    )


def safety_filter_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The brand-safety arguments of ``Filters.make``."""
    return {
        "brand_safe": getattr(args, "brand_safe", False),
        "exclude_categories": getattr(args, "exclude_categories", None),
        "safe_last": getattr(args, "safe_last", None),
    }


def hits_with_safety(store: Store, hits: list[Hit]) -> list[dict[str, object]]:
    """Each hit as a dict, with its account's screen: posts screened and flagged, the flagged
    share, and its newest flags (category, post, evidence)."""
    from congruence.store import flags as flag_store

    safety = flag_store.accounts(store, [h.influencer_id for h in hits], max_flags=5)
    out = []
    for h in hits:
        s = safety.get(h.influencer_id)
        doc = h.to_dict()
        doc["safety"] = (
            None
            if s is None
            else {
                "screened_posts": s.screened,
                "flagged_posts": s.flagged,
                "flagged_share": round(s.share, 4),
                "flags": [
                    {
                        "post_id": f.post_id,
                        "category": f.category,
                        "source": f.source,
                        "evidence": f.evidence,
                        "score": round(f.score, 4),
                    }
                    for f in s.flags
                ],
            }
        )
        out.append(doc)
    return out


def run_screen(settings: Settings, quiet: bool) -> ScreenReport:
    """Screen what waits; one line on stderr unless ``quiet`` (``ingest`` calls this too)."""
    from congruence.safety.screen import screen

    report = screen(settings)
    if not quiet and report.screened:
        cats = ", ".join(f"{c} {n}" for c, n in report.by_category.items()) or "none"
        print(
            f"brand-safety screen: {report.screened} posts screened, {report.flagged} flagged ({cats})", file=sys.stderr
        )
    return report


def cmd_screen(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.store import flags as flag_store
    from congruence.store.records import Store

    report = run_screen(settings, quiet=True)
    with Store.open(settings) as store:  # what this run did, and where the whole store stands
        screened, flagged, per = flag_store.totals(store, report.version)
    if args.json:
        doc = {**report.to_dict(), "store": {"screened": screened, "flagged": flagged, "by_category": per}}
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    cats = ", ".join(f"{c} {n}" for c, n in report.by_category.items()) or "none"
    print(
        f"screened {report.screened} posts now (the others were screened before); {report.flagged} flagged "
        f"(posts per category: {cats})"
    )
    every = ", ".join(f"{c} {n}" for c, n in per.items()) or "none"
    print(f"in the store: {screened} posts screened, {flagged} flagged (posts per category: {every})")
    if report.waiting:
        print(f"{report.waiting} posts wait for their embeddings: run `congruence ingest` first", file=sys.stderr)
    return 0


def add_parser(sub: Subcommands) -> None:
    p = sub.add_parser("screen", help="flag posts by brand-safety category (incremental; ingest runs it too)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_screen)
