"""`congruence serve` / `congruence demo` as real processes: start, wait for the URL, stop."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (IPv4 dotted, IPv6 as hex), from /proc."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(addr) == 8:
                    out.add(".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    out.add(addr)
    return out


def wait_until_up(url: str, timeout: float = 120) -> None:
    """The URL is printed just before uvicorn binds: wait for /healthz to answer."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url.rstrip("/") + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up in {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def cli_process(*argv: str, until: str, timeout: float = 600) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Run ``congruence *argv`` until a stdout line contains ``until``; yield (process, lines
    so far, still growing); interrupt it (Ctrl-C) afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "congruence", *argv],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    seen: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            seen.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if until in seen.get(timeout=1):
                    break
            except queue.Empty:
                pass
            if proc.poll() is not None and seen.empty():
                raise AssertionError(f"congruence {' '.join(argv)} exited {proc.returncode}:\n" + "".join(lines[-40:]))
            if time.monotonic() > deadline:
                raise AssertionError(f"no {until!r} after {timeout:.0f} s:\n" + "".join(lines[-40:]))
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
