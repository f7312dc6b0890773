"""Files of ids, one a line: test brands, held-out accounts, brands to export."""

from __future__ import annotations

from pathlib import Path

from congruence.core.errors import InvalidInput


def read_id_lines(path: Path, what: str) -> dict[str, int]:
    """{id: its first line number}, in file order; blank lines and '#' comments skipped,
    repeats dropped. ``what`` names the ids in errors ("brand", "account")."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read the {what} list ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: not valid UTF-8 (byte {e.start})") from None
    first_line: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        item = line.strip()
        if item and not item.startswith("#"):
            first_line.setdefault(item, n)
    if not first_line:
        raise InvalidInput(f"{path}: no {what} ids (expected one a line)")
    return first_line
