"""Progress of long jobs (ingest, train, export, index build) on stderr.

On a terminal: a tqdm bar. Otherwise (a log, a scheduler): a line with done/total, rate and
ETA at each tenth of the work and at least every ``interval`` seconds, from a timer thread,
so that a stage whose steps take minutes (an index build, a slow epoch) still shows it is
alive. ``quiet`` prints neither.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

INTERVAL_S = 10.0


@dataclass(frozen=True)
class ProgressStyle:
    """mode: "bar" (a terminal), "lines" (anything else) or "off" (``--quiet``)."""

    mode: str = "lines"
    interval_s: float = INTERVAL_S

    @classmethod
    def for_stream(cls, stream: TextIO, quiet: bool = False, interval_s: float = INTERVAL_S) -> ProgressStyle:
        if quiet:
            return cls("off", interval_s)
        return cls("bar" if stream.isatty() else "lines", interval_s)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Task:
    """One job's progress: ``update(n)`` as work is done, ``close()`` at the end (idempotent)."""

    def __init__(self, label: str, total: int | None, unit: str, style: ProgressStyle, stream: TextIO):
        self.label, self.total, self.unit, self.style, self.stream = label, total, unit, style, stream
        self.done = 0
        self._t0 = self._last_line = time.monotonic()
        self._tenth = -1
        self._printed = -1  # ``done`` when the last line was printed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar: Any = None
        if style.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(desc=label, total=total, unit=unit, file=stream)
        elif style.mode == "lines":
            self._line()
            self._tenth = 0 if total else -1  # that line stands for the first tenth
            threading.Thread(target=self._heartbeat, name=f"progress {label}", daemon=True).start()

    def line(self) -> str:
        """``label: done/total unit (p %), rate unit/s, ETA h:mm:ss`` (what is known so far)."""
        total = f"/{self.total:,}" if self.total else ""
        share = f" ({100 * self.done // self.total} %)" if self.total else ""
        text = f"{self.label}: {self.done:,}{total} {self.unit}{share}"
        elapsed = time.monotonic() - self._t0
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            text += f", {rate:,.1f} {self.unit}/s"
            if self.total:
                text += f", ETA {_duration(max(self.total - self.done, 0) / rate)}"
        return text

    def _line(self) -> None:
        with self._lock:
            print(self.line(), file=self.stream, flush=True)
            self._last_line, self._printed = time.monotonic(), self.done

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(1.0, self.style.interval_s)):
            if time.monotonic() - self._last_line >= self.style.interval_s:
                self._line()

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.style.mode == "lines" and self.total:
            tenth = 10 * self.done // self.total
            if tenth > self._tenth:
                self._tenth = tenth
                self._line()

    def advance_to(self, done: int) -> None:
        self.update(done - self.done)

    def note(self, text: str) -> None:
        """A line of its own (an epoch's loss), printed unless quiet, under a bar on a terminal."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        elif self.style.mode == "lines":
            with self._lock:
                print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._bar is not None:
            self._bar.close()
        elif self.style.mode == "lines" and self._printed != self.done:
            self._line()


class ProgressBoard:
    """The tasks of one command, by name, opened on first use; ``close()`` ends them all."""

    def __init__(self, style: ProgressStyle, stream: TextIO | None = None):
        self.style = style
        self.stream = stream if stream is not None else sys.stderr
        self.tasks: dict[str, Task] = {}

    def task(self, name: str, label: str, unit: str, total: int | None = None) -> Task:
        if name not in self.tasks:
            self.tasks[name] = Task(label, total, unit, self.style, self.stream)
        elif total is not None:
            self.tasks[name].set_total(total)
        return self.tasks[name]

    def stage_callback(self, labels: dict[str, tuple[str, str]]) -> Callable[[str, int, int], None]:
        """A ``(stage, n, total)`` callback: stage -> (label, unit) in ``labels`` (unknown stages: as named)."""

        def update(stage: str, n: int, total: int) -> None:
            label, unit = labels.get(stage, (stage, "items"))
            task = self.task(stage, label, unit, total)
            task.update(n)
            if task.total and task.done >= task.total:
                task.close()

        return update

    def close(self) -> None:
        for task in self.tasks.values():
            task.close()


_OFF = ProgressStyle("off")
_current = ProgressBoard(_OFF)


def set_board(board: ProgressBoard | None) -> None:
    """Make ``board`` the process's progress board (the CLI does, from --quiet and the
    terminal); None: silent, the default, so a library call prints nothing."""
    global _current
    _current = board if board is not None else ProgressBoard(_OFF)


def current_board() -> ProgressBoard:
    """The board for jobs that start deep inside a command (an index build at engine start)."""
    return _current
