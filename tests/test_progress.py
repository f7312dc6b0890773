"""Progress a log can show: lines with done/total, rate and ETA at least every interval, a bar
on a terminal, nothing with --quiet; ingest, train, export and index builds report through it."""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from congruence.core.progress import ProgressBoard, ProgressStyle, Task, current_board, set_board
from congruence.core.settings import Settings
from tests.conftest import run

LINE = re.compile(
    r"(?P<label>[\w: -]+): (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+) \((?P<pct>\d+) %\)"
    r"(, (?P<rate>[\d,.]+) \w+/s, ETA (?P<eta>\d+:\d\d:\d\d))?"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Lines(io.StringIO):
    """A log that notes when each line ends, and wakes whoever waits for the ``want``-th."""

    def __init__(self, want: int):
        super().__init__()
        self.want, self.enough = want, threading.Event()
        self.ends: list[float] = []

    def write(self, s: str) -> int:
        n = super().write(s)
        self.ends += [time.monotonic()] * s.count("\n")
        if len(self.ends) >= self.want:
            self.enough.set()
        return n


def test_lines_come_at_least_every_interval_while_a_step_runs() -> None:
    out = Lines(want=4)  # the first line, then 3 heartbeats
    started = time.monotonic()
    task = Task("index build", 1000, "accounts", ProgressStyle("lines", interval_s=0.2), out)
    task.update(3)  # under a tenth: no line of its own
    # one long step (a graph build) runs on: the timer speaks for it, with no update
    assert out.enough.wait(timeout=30), out.getvalue()
    task.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 4, lines  # the first line and >= 3 heartbeats (close adds none: nothing new)
    assert all(LINE.fullmatch(x) for x in lines[1:4]), lines  # the heartbeats say where the step stands
    # ... each an interval (0.2 s) or more after the line before it
    assert out.ends[0] >= started and all(b - a >= 0.2 for a, b in zip(out.ends[:3], out.ends[1:4], strict=True))
    m = LINE.fullmatch(lines[-1])
    assert m and m["done"] == "3" and m["total"] == "1,000" and m["unit"] == "accounts" and m["eta"], lines[-1]


def test_a_line_at_each_tenth_and_none_when_quiet() -> None:
    out = io.StringIO()
    task = Task("encoding images", 50, "images", ProgressStyle("lines", interval_s=60), out)
    for _ in range(10):
        task.update(5)
    task.close()
    lines = out.getvalue().splitlines()
    assert [LINE.fullmatch(x)["done"] for x in lines] == [str(5 * i) for i in range(11)]  # type: ignore[index]
    quiet = io.StringIO()
    board = ProgressBoard(ProgressStyle.for_stream(Terminal(), quiet=True), quiet)
    board.task("x", "encoding images", "images", 50).update(50)
    board.close()
    assert quiet.getvalue() == ""


def test_a_terminal_gets_the_bar_not_lines() -> None:
    term = Terminal()
    style = ProgressStyle.for_stream(term)
    assert style.mode == "bar" and ProgressStyle.for_stream(io.StringIO()).mode == "lines"
    task = Task("exporting", 10, "brands", style, term)
    task.update(10)
    task.close()
    assert "10/10" in term.getvalue() and "\r" in term.getvalue() and "ETA" not in term.getvalue()


@pytest.mark.slow
def test_cli_ingest_prints_progress_lines_and_quiet_silences_them(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = Path(shutil.copytree(small_corpus, tmp_path / "corpus"))
    code, _, err = run(capsys, "ingest", str(corpus))
    assert code == 0
    done = [m for m in map(LINE.fullmatch, err.splitlines()) if m]
    images = [m for m in done if m["label"] == "encoding images"]
    assert images and images[-1]["done"] == images[-1]["total"] and images[-1]["rate"], err
    assert any(m["label"] == "encoding captions" for m in done), err
    assert current_board().style.mode == "off"  # the command's board is gone when it returns
    posts = [json.loads(x) for x in (corpus / "posts.jsonl").read_text().splitlines()]
    (corpus / "posts.jsonl").write_text(
        "".join(json.dumps({**p, "caption": (p.get("caption") or "") + " again"}) + "\n" for p in posts)
    )
    code, out, err = run(capsys, "ingest", "--quiet", "--json", str(corpus))
    assert code == 0 and json.loads(out)["texts_encoded"] > 0 and "encoding" not in err, err


def test_quiet_goes_before_or_after_the_subcommand() -> None:
    from congruence.cli.main import build_parser

    parse = build_parser().parse_args
    assert parse(["--quiet", "ingest", "x"]).quiet and parse(["ingest", "-q", "x"]).quiet
    assert (
        not parse(["ingest", "x"]).quiet
        and parse(["-q", "train"]).quiet
        and parse(["export", "--out", "f", "-q"]).quiet
    )


def test_index_build_reports_through_the_commands_board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from congruence.indexer import index_sync
    from congruence.indexer.index_sync import IndexLayout
    from congruence.store.vectors import AccountChunk

    class Store:  # the three calls a rebuild makes
        def account_vector_chunks(self, space: str, kind: str, with_posts: bool = False, shard=None):  # type: ignore[no-untyped-def]
            for i in range(0, 40, 10):
                yield AccountChunk(np.arange(i, i + 10), np.eye(10, 4, dtype=np.float32) + 0.5, None)

        def post_count(self, space: str, kind: str, shard: object = None) -> int:
            return 0

        def space_dim(self, space: str) -> int:
            return 4

    out = io.StringIO()
    set_board(ProgressBoard(ProgressStyle("lines", interval_s=60), out))
    monkeypatch.setattr(index_sync, "PROGRESS_MIN", 40)  # builds of fewer accounts take seconds: silent
    try:
        index_sync._rebuild(
            Store(),
            tmp_path / "small",
            "pooled",
            "m",
            IndexLayout(),
            np.arange(30),  # type: ignore[arg-type]
            np.ones(30, np.int64),
            "test",
        )
        assert out.getvalue() == ""
        seq = np.arange(40)
        res = index_sync._rebuild(
            Store(),
            tmp_path,
            "pooled",
            "m",
            IndexLayout(),
            seq,  # type: ignore[arg-type]
            np.ones(40, np.int64),
            "test",
        )
    finally:
        set_board(None)
    assert res.added == 40
    lines = out.getvalue().splitlines()
    assert lines[0] == "index build pooled: 0/40 accounts (0 %)" and LINE.fullmatch(lines[-1])["done"] == "40", lines  # type: ignore[index]
