"""The README stays short and true: every command line in it and in docs/ is one the CLI takes,
and every link between them points at a file that exists."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

from congruence.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _command_lines(doc: Path) -> list[tuple[int, str]]:
    """(line number, `congruence ...` line) of the doc's code blocks; continued lines left out."""
    out, inside = [], False
    for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif inside and line.strip().startswith("congruence ") and not line.rstrip().endswith("\\"):
            out.append((i, line.strip()))
    return out


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_every_documented_command_parses() -> None:
    wrong, seen = [], 0
    for doc in DOCS:
        for i, line in _command_lines(doc):
            seen += 1
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    build_parser().parse_args(shlex.split(line, comments=True)[1:])
            except SystemExit:
                wrong.append(f"{doc.name}:{i}: {line}: {err.getvalue().strip().splitlines()[-1]}")
    assert seen >= 50 and wrong == []  # the README alone has a dozen


def test_links_between_docs_resolve() -> None:
    broken = [
        f"{doc.name}: {target}"
        for doc in DOCS
        for target in LINK.findall(doc.read_text(encoding="utf-8"))
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert broken == []
