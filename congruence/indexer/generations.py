"""An index's generation folders on disk: checksums, durable writes, pruning old generations."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(root: Path, keep: str) -> None:
    """Remove older generations, keeping the newest other one for readers mid-load."""
    try:  # another saver may have switched `current` since: never remove what it points to
        live = os.readlink(root / "current")
    except OSError:
        live = None
    gens: list[tuple[float, Path]] = []
    for p in root.glob("gen-*"):
        try:
            if p.is_dir() and not p.name.endswith(".tmp"):
                gens.append((p.stat().st_mtime, p))
        except FileNotFoundError:  # pruned meanwhile by another saver
            continue
    old = [g for _, g in sorted(gens) if g.name not in (keep, live)]
    for g in old[:-1]:
        shutil.rmtree(g, ignore_errors=True)
