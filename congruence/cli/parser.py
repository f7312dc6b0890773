"""--quiet for the commands that report progress (ingest, train, export), before or after the subcommand."""

from __future__ import annotations

import argparse


def quiet_flag(p: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """Adds -q/--quiet. SUPPRESS (on a subcommand): a value given before the subcommand stays."""
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress on stderr (neither the bar on a terminal nor the lines otherwise)",
    )
