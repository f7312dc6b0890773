"""Timing statistics, result tables and the machine description shared by every section."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Value = float | int | str | None
Row = dict[str, Value]


@dataclass(frozen=True)
class Stats:
    """Summary of per-call wall times, in milliseconds."""

    n: int
    median_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def per_s(self) -> float:
        """Calls per second at the median latency."""
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")


def stats(seconds: np.ndarray) -> Stats:
    s = np.asarray(seconds, np.float64) * 1000.0
    if len(s) == 0:
        raise ValueError("expected at least one sample")
    p50, p99 = np.percentile(s, [50, 99])
    return Stats(len(s), float(p50), float(p99), float(s.mean()))


def sample_latency(call: Callable[[int], object], n: int, warmup: int = 5) -> np.ndarray:
    """(n,) wall seconds of ``call(i)`` for i in 0..n-1, after ``warmup`` untimed calls."""
    for i in range(warmup):
        call(i % max(n, 1))
    out = np.empty(n, np.float64)
    for i in range(n):
        t = time.perf_counter()
        call(i)
        out[i] = time.perf_counter() - t
    return out


def sample_ab(
    a: Callable[[int], object], b: Callable[[int], object] | None, n: int, n_b: int | None = None, warmup: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Wall seconds of ``a(i)`` for every i < n, and of ``b(i)`` right after it for i < n_b.

    Pairing the calls makes a change in the load of a shared machine hit both alike, and
    keeps either from finding the caches warmer, so a ratio of medians over the pairs
    (``ta[:n_b]`` against ``tb``) stays meaningful when absolute times do not.
    """
    n_b = (n if n_b is None else min(n_b, n)) if b is not None else 0
    for i in range(warmup):
        a(i % max(n, 1))
        if b is not None:
            b(i % max(n, 1))
    ta = np.empty(n, np.float64)
    tb = np.empty(n_b, np.float64)
    for i in range(n):
        t = time.perf_counter()
        a(i)
        ta[i] = time.perf_counter() - t
        if b is not None and i < n_b:
            t = time.perf_counter()
            b(i)
            tb[i] = time.perf_counter() - t
    return ta, tb


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as sw: ...`` then ``sw[0]`` holds the elapsed seconds."""
    box = [0.0]
    t = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - t


@dataclass
class Table:
    title: str
    rows: list[Row]


@dataclass
class Section:
    """One benchmark section's result: tables to print, notes, and JSON-only details."""

    name: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0


def fmt(v: Value) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)


def format_table(table: Table) -> str:
    if not table.rows:
        return f"{table.title}\n  (no rows)"
    cols = list(dict.fromkeys(c for r in table.rows for c in r))
    cells = [[fmt(r.get(c)) for c in cols] for r in table.rows]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(cols)]
    left = [all(isinstance(r.get(c), str) for r in table.rows) for c in cols]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) if lj else v.rjust(w) for v, w, lj in zip(vals, widths, left, strict=True))

    out = [table.title, line(cols), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def format_section(section: Section) -> str:
    parts = [f"== {section.name} ({section.seconds:.0f} s) =="]
    parts += [format_table(t) for t in section.tables]
    text = "\n\n".join(parts)
    if section.notes:
        text += "\n" + "\n".join(f"  note: {n}" for n in section.notes)
    return text


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, object]:
    """CPU, cores, RAM, library versions and whether a GPU is present."""
    import faiss
    import torch

    gpu = torch.cuda.is_available()
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_gb": _ram_gb(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "gpu_present": gpu,
        "gpu_name": torch.cuda.get_device_name(0) if gpu else None,
        "faiss_gpus": int(getattr(faiss, "get_num_gpus", lambda: 0)()),
        "git_commit": _git_commit(Path(__file__).resolve().parent.parent),
    }


@contextmanager
def timed_calls(targets: Sequence[tuple[Any, str, str]]) -> Iterator[dict[str, float]]:
    """Seconds spent inside each ``(owner, attribute, label)`` while the block runs.

    The attributes (methods of a class, functions of a module) are wrapped for the
    duration and restored after; targets sharing a label add up.
    """
    spent = dict.fromkeys((label for *_, label in targets), 0.0)
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        inner = vars(owner)[name] if name in vars(owner) else getattr(owner, name)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                spent[label] += time.perf_counter() - t

        saved.append((owner, name, inner))
        setattr(owner, name, timed)

    for owner, name, label in targets:
        wrap(owner, name, label)
    try:
        yield spent
    finally:
        for owner, name, inner in reversed(saved):
            setattr(owner, name, inner)


def report_section(section: Section, stem: str, machine: dict[str, object]) -> int:
    """A standalone section's ending: print its table, save its JSON (``save_section``), and
    the exit status (1 when a target it checks was missed)."""
    print(format_section(section))
    print(f"load avg {[round(x, 2) for x in os.getloadavg()]}; results in {save_section(section, stem, machine)}")
    return 1 if section.details.get("targets_met") is False else 0


def save_section(section: Section, stem: str, machine: dict[str, object]) -> Path:
    """Write one section's JSON (with the machine's description and the load at the end) to
    ``bench/results/<stem>-<UTC time>.json``; its path."""
    import json
    from dataclasses import asdict
    from datetime import UTC, datetime

    machine = {**machine, "load_avg_end_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    path = Path(__file__).resolve().parent / "results" / f"{stem}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "section": asdict(section)}, indent=1, default=str) + "\n")
    return path
