"""The campaign-list filters of `match`, `similar` and `export`: --exclude-list and
--exclude-status (docs/lists.md, "Searches leave out listed creators")."""

from __future__ import annotations

import argparse
from typing import Any


def list_args(p: argparse.ArgumentParser) -> None:
    """--exclude-list, --exclude-status."""
    p.add_argument(
        "--exclude-list",
        metavar="NAME",
        default=None,
        help="leave out the influencers of this campaign list (`congruence list ...`)",
    )
    p.add_argument(
        "--exclude-status",
        metavar="S[,S...]",
        default=None,
        help="with --exclude-list: leave out only its influencers with these statuses (e.g. contacted,declined)",
    )


def list_filter_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The list arguments of ``Filters.make``."""
    return {
        "exclude_list": getattr(args, "exclude_list", None),
        "exclude_status": getattr(args, "exclude_status", None),
    }
