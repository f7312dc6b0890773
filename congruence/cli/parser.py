"""The command line's parser: every subcommand, nested ones too, takes --quiet (before or after
the subcommand), and an error about one parameter names the option as the command line spells it."""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from congruence.core.errors import CongruenceError


class Subcommands(Protocol):
    """What ``ArgumentParser.add_subparsers`` returns, as the modules that add commands use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with -q/--quiet. ``add_subparsers`` makes its subcommands of this class
    too (argparse's default ``parser_class`` is the parent's), so every command, nested ones too,
    has it; any command may build the index, with progress."""

    def __init__(self, *args: Any, quiet_default: object = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS on a subcommand: a --quiet given before the subcommand stays
        self.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=quiet_default,
            help="no progress on stderr (neither the bar on a terminal nor the lines otherwise)",
        )


def option_of(field: str | None, args: argparse.Namespace) -> str | None:
    """How this command spells the parameter ``field``: ``--like-weight`` for ``like_weight``
    (options are named after their field so), ``-k`` for ``k``, or as the command names it where
    its option is called otherwise (``set_defaults(field_options={field: option})``); None when
    the command that ran has no such option (the library's own name is said then)."""
    if field is None:
        return None
    named: dict[str, str] = getattr(args, "field_options", {})
    if field in named:
        return named[field]
    if field not in vars(args):
        return None
    return ("-" if len(field) == 1 else "--") + field.replace("_", "-")


def error_text(e: CongruenceError, args: argparse.Namespace) -> str:
    return e.spelt(option_of(e.field, args))
