"""ONNX graphs exported once from an encoder's packaged weights, cached beside them.

A graph is exported here, from the weights already on disk (nothing is downloaded), by
PyTorch's TorchScript-based exporter, and cached under a name keyed by the SHA-256 of the
weights file and the export settings (graph name and options, opset, this module's format,
torch's version). A changed weights file or setting gives another key: the stale graph is
never loaded, a new one is exported and the stale files of the same graph are removed. A
file is written under a temporary name and renamed, so a reader never sees half a graph,
and two processes exporting at once both end with a whole one.

The cache is a folder beside the weights (``congruence-onnx/``) when that folder is writable
(the package's folder in a virtualenv), else ``congruence-onnx-<uid>`` in the temporary folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

logger = logging.getLogger(__name__)
FORMAT = 1  # bump when an export function changes the graph it writes
OPSET = 17
CACHE_FOLDER = "congruence-onnx"


@dataclass(frozen=True)
class ExportSpec:
    """What a cached graph is made from: ``graph`` names the exported function (e.g.
    "efficientnet-lite0.features"), ``weights`` the file its weights are read from,
    ``options`` the export settings that change the graph."""

    graph: str
    weights: Path
    options: dict[str, str | int | float] = field(default_factory=dict)

    def key(self) -> str:
        """20 hex digits of the SHA-256 over the weights' digest and every export setting."""
        settings = {
            "graph": self.graph,
            "options": self.options,
            "opset": OPSET,
            "format": FORMAT,
            "torch": torch.__version__.split("+")[0],
        }
        h = hashlib.sha256(file_sha256(self.weights).encode())
        h.update(json.dumps(settings, sort_keys=True).encode())
        return h.hexdigest()[:20]

    @property
    def stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.graph)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time) in a process."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def default_cache_dir(weights: Path) -> Path:
    beside = weights.parent / CACHE_FOLDER
    if os.access(beside if beside.is_dir() else weights.parent, os.W_OK):
        return beside
    return Path(tempfile.gettempdir()) / f"{CACHE_FOLDER}-{os.getuid()}"


def cached_graph(
    spec: ExportSpec, export: Callable[[Path], None], cache_dir: Path | None = None, force: bool = False
) -> Path:
    """The path of ``spec``'s graph, exported by ``export(path)`` first when missing, stale or ``force``d."""
    folder = cache_dir if cache_dir is not None else default_cache_dir(spec.weights)
    path = folder / f"{spec.stem}-{spec.key()}.onnx"
    if path.is_file() and not force:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    logger.info("exporting %s to ONNX: %s", spec.graph, path)
    try:
        export(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for old in folder.glob(f"{spec.stem}-*.onnx"):
        if old != path and re.fullmatch(re.escape(spec.stem) + r"-[0-9a-f]{20}\.onnx", old.name):
            old.unlink(missing_ok=True)  # made from other weights or settings: stale
    return path
