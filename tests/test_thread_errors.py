"""An exception in a worker thread fails the test under this project's pytest settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAISES_IN_A_THREAD = """
import threading


def test_a_thread_raises():
    t = threading.Thread(target=lambda: 1 / 0)
    t.start()
    t.join()
"""


def _pytest(test_file: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(config),
            "--rootdir",
            str(test_file.parent),
            str(test_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=test_file.parent,
    )


def test_an_exception_in_a_thread_fails_the_test(tmp_path: Path) -> None:
    test_file = tmp_path / "test_raises.py"
    test_file.write_text(RAISES_IN_A_THREAD)
    ours = _pytest(test_file, ROOT / "pyproject.toml")
    assert ours.returncode == 1, ours.stdout[-2000:]
    assert "1 failed" in ours.stdout and "ZeroDivisionError" in ours.stdout, ours.stdout[-2000:]

    # without the setting, the same test passes with only a warning: the hole it closes
    bare = tmp_path / "bare.ini"
    bare.write_text("[pytest]\n")
    plain = _pytest(test_file, bare)
    assert plain.returncode == 0 and "PytestUnhandledThreadExceptionWarning" in plain.stdout, plain.stdout[-2000:]
