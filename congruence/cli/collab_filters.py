"""The collaboration filters of `match`, `similar` and `export`: --worked-with, --not-worked-with
and --since (docs/collaborations.md, "Filters"), and the warnings an answer carries."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def collab_args(p: argparse.ArgumentParser) -> None:
    """--worked-with, --not-worked-with, --since."""
    p.add_argument(
        "--worked-with",
        nargs="+",
        metavar="HANDLE",
        default=None,
        help="only creators who tagged, were sponsored by or are a known match of any of these handles",
    )
    p.add_argument(
        "--not-worked-with",
        nargs="+",
        metavar="HANDLE",
        default=None,
        help="leave out creators who tagged, were sponsored by or are a known match of any of these (exclusivity)",
    )
    p.add_argument(
        "--since",
        metavar="DATE",
        default=None,
        help="with --not-worked-with: leave out only those who tagged or were sponsored by one on or after "
        "DATE (YYYY-MM-DD; a known match always counts)",
    )


def collab_filter_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The collaboration arguments of ``Filters.make``."""
    return {
        "worked_with": getattr(args, "worked_with", None),
        "not_worked_with": getattr(args, "not_worked_with", None),
        "since": getattr(args, "since", None),
    }


def print_warnings(warnings: Sequence[str]) -> None:
    """Each warning on stderr, so that stdout stays the answer."""
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def signals_arg(p: argparse.ArgumentParser) -> None:
    """--signals all|content."""
    p.add_argument(
        "--signals",
        choices=("all", "content"),
        default="all",
        help="all (default): content and, for a brand with known partners, their collaborations (a learned "
        "fusion, docs/collaborations.md); content: what the posts look and read like alone",
    )
