"""Throughput of ``congruence serve`` for ``POST /v1/match`` at 1, 4 and 16 concurrent clients,
for the versions of ``VERSIONS`` in one run: "today" (``congruence/`` at commit ``dae2f5d``,
before the read-only engine, extracted with ``git archive``), "now" (this tree, one process)
and "now --workers 2" (this tree, two server processes over one published generation).

``python -m bench.serve_load [--quick] [--out FILE]``, or ``python -m bench --only load``.

One store (``bench.match_e2e_store``: 100,000 influencers, 10,000 with --quick, 200 brands, a
seeded head in service) in an embedded PostgreSQL; each version serves it in turn as its own
process (same CONGRUENCE_HOME and DATABASE_URL, CPU, no auth, PYTHONPATH = its source, checked
first), timed from start to ``/readyz`` 200 (the first builds and publishes the FAISS index).
Per client count, threads here, each on its own keep-alive ``http.client`` connection, ask for
random brands (seeded), k=20: a warm-up, discarded, then a timed window; requests/s is the
requests started in the window over the time until the last of them ended. The server's
resident memory (its processes, PostgreSQL apart) is read after the runs. Targets, on ``TARGETED``:
4 and 16 clients each >= 1.7x the 1-client throughput, p99 <= 3x p50 at 16, no errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

from bench.common import Row, Section, Table, format_section, machine_info, report_section

ROOT = Path(__file__).resolve().parents[1]
TODAY_COMMIT = "dae2f5d"
# what serves, in order: name -> (code: "today" or "now", extra `congruence serve` arguments)
VERSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "today": ("today", ()),
    "now": ("now", ()),
    "now --workers 2": ("now", ("--workers", "2")),
}
TARGETED = "now --workers 2"  # the version the targets are checked on: the product's way to use 2 cores
READY_TIMEOUT_S = 600.0
TARGET_SCALING, TARGET_TAIL = 1.7, 3.0
Popen = subprocess.Popen[bytes]
Sample = tuple[float, float, str]  # start (perf_counter), seconds, error text ("" when 200)


@dataclass(frozen=True)
class ServeLoadConfig:
    n: int  # influencers in the store
    seconds: float  # timed window per client count
    warmup_s: float = 2.0
    clients: tuple[int, ...] = (1, 4, 16)
    versions: tuple[str, ...] = tuple(VERSIONS)  # in the order they serve
    brands: int = 200
    k: int = 20
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> ServeLoadConfig:
        return cls(10_000, 5.0) if quick else cls(100_000, 20.0)


def source(version: str, tmp: Path) -> Path:
    """The folder to put on PYTHONPATH: this tree for "now", ``git archive`` of the commit for "today"."""
    if version == "now":
        return ROOT
    dst = tmp / f"src-{version}"
    dst.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "archive", TODAY_COMMIT, "congruence"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dst)], input=tar.stdout, check=True)
    return dst


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:].rstrip()


def _ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def start_server(src: Path, env: dict[str, str], args: Sequence[str], cwd: Path, log: Path) -> tuple[Popen, int]:
    """``python -m congruence serve`` importing the package from ``src``, ready (``/readyz`` 200)."""
    env = {**env, "PYTHONPATH": str(src)}
    cwd.mkdir(parents=True, exist_ok=True)
    probe = [sys.executable, "-c", "import congruence; print(congruence.__file__)"]
    found = Path(subprocess.run(probe, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip())
    if found.resolve() != (src / "congruence" / "__init__.py").resolve():
        raise RuntimeError(f"PYTHONPATH={src} imports congruence from {found}, not from {src}")
    port = _free_port()
    cmd = [sys.executable, "-m", "congruence", "serve", "--no-auth", "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as out:  # the child holds its own copy of the file
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _ready(port):
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}) before ready; its output:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"the server was not ready after {READY_TIMEOUT_S:.0f} s; its output:\n{_tail(log)}")
        time.sleep(0.5)  # the next poll
    return proc, port


def stop_server(proc: Popen) -> None:
    """SIGTERM, then kill (its children too) if it is still there after 30 s."""
    children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for c in children:
        if c.is_running():
            c.kill()


def _client(port: int, cfg: ServeLoadConfig, seed: int, window: tuple[float, float], out: list[Sample]) -> None:
    """Requests one after the other on a keep-alive connection until the window ends; those
    started in the window go to ``out``: (start, seconds, error text or "")."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while (t := time.perf_counter()) < window[1]:
        body = json.dumps({"brand_id": f"brand_{rng.randrange(cfg.brands):06d}", "k": cfg.k})
        try:
            conn.request("POST", "/v1/match", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            err = "" if r.status == 200 else f"HTTP {r.status}: {data[:300]!r}"
        except (OSError, http.client.HTTPException) as e:
            err = f"{type(e).__name__}: {e}"
            conn.close()  # the next request opens a new connection
        if t >= window[0]:
            out.append((t, time.perf_counter() - t, err))
    conn.close()


@dataclass(frozen=True)
class Level:
    """One client count's window: requests started in it, their rate and latency (successes)."""

    clients: int
    requests: int
    per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_errors: list[str]

    def row(self, version: str, one_client: Level) -> Row:
        ratio = self.per_s / one_client.per_s if one_client.per_s else float("nan")
        row: Row = {"version": version, "clients": self.clients, "requests": self.requests, "requests/s": self.per_s}
        row |= {"x 1 client": ratio, "p50 ms": self.p50_ms, "p99 ms": self.p99_ms, "p99/p50": self.p99_ms / self.p50_ms}
        return row | {"errors": self.errors}


def load(port: int, cfg: ServeLoadConfig, clients: int) -> Level:
    """``clients`` threads through the warm-up and the timed window."""
    start = time.perf_counter() + cfg.warmup_s
    window = (start, start + cfg.seconds)
    per: list[list[Sample]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=_client, args=(port, cfg, cfg.seed * 1000 + clients * 100 + i, window, per[i]))
        for i in range(clients)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    samples = [x for mine in per for x in mine]
    started, lat = (np.array([x[i] for x in samples], np.float64) for i in (0, 1))
    ok = np.array([not x[2] for x in samples], bool)
    elapsed = float((started + lat).max() - start) if len(lat) else cfg.seconds
    p50, p99 = np.percentile(lat[ok] * 1000, [50, 99]) if ok.any() else (float("nan"), float("nan"))
    errors = [x[2] for x in samples if x[2]][:5]
    return Level(clients, len(lat), len(lat) / elapsed, float(p50), float(p99), int((~ok).sum()), errors)


def serve_and_load(version: str, cfg: ServeLoadConfig, env: dict[str, str], tmp: Path) -> tuple[list[Level], Row]:
    """Start ``version``'s server, load it at each client count, stop it; (levels, server row)."""
    t = time.perf_counter()
    code, args = VERSIONS[version]
    slug = "-".join(version.replace("-", "").split())
    proc, port = start_server(source(code, tmp), env, args, tmp / f"cwd-{slug}", tmp / f"serve-{slug}.log")
    ready_s = time.perf_counter() - t
    try:
        levels = [load(port, cfg, c) for c in cfg.clients]
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        rss = sum(q.memory_info().rss for q in tree) / 2**20
        return levels, {"version": version, "start to ready s": ready_s, "RSS MB": rss, "processes": len(tree)}
    finally:
        stop_server(proc)


def targets(levels: dict[int, Level]) -> dict[str, bool]:
    """The targets, checked on ``TARGETED``'s levels by client count."""
    if not {1, 4, 16} <= levels.keys():
        return {f"'{TARGETED}' served 1, 4 and 16 clients": False}
    one = levels[1].per_s
    return {
        f"4 clients >= {TARGET_SCALING}x 1 client": levels[4].per_s >= TARGET_SCALING * one,
        f"16 clients >= {TARGET_SCALING}x 1 client": levels[16].per_s >= TARGET_SCALING * one,
        f"p99 <= {TARGET_TAIL}x p50 at 16 clients": levels[16].p99_ms <= TARGET_TAIL * levels[16].p50_ms,
        "no errors": sum(lv.errors for lv in levels.values()) == 0,
    }


def run(cfg: ServeLoadConfig, tmp: Path) -> Section:
    from bench.match_e2e_store import E2eConfig, build_store
    from congruence.core.settings import Settings
    from congruence.store.embedded_pg import embedded_pg

    section = Section(f"serve load: POST /v1/match, k={cfg.k}, {cfg.n:,} influencers, head in service")
    results: dict[str, list[Level]] = {}
    servers: list[Row] = []
    failed: dict[str, str] = {}
    with embedded_pg(tmp / "serve-load-pg" / "pg") as pg:
        settings = Settings(home=tmp / "serve-load-home", database_url=pg.fresh_database("serveload"), device="cpu")
        built = build_store(settings, E2eConfig(sizes=(cfg.n,), brands=cfg.brands, k=cfg.k, seed=cfg.seed), cfg.n)
        assert settings.database_url is not None
        env = {**os.environ, "CONGRUENCE_DEVICE": "cpu", "CONGRUENCE_RATE_LIMIT": "0"}
        env |= {"CONGRUENCE_HOME": str(settings.home), "DATABASE_URL": settings.database_url}
        for version in cfg.versions:
            try:
                results[version], server = serve_and_load(version, cfg, env, tmp)
                servers.append(server)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                failed[version] = str(e)[-3000:]
    rows = [lv.row(v, levels[0]) for v, levels in results.items() for lv in levels]
    section.tables += [
        Table(f"{cfg.seconds:.0f} s per client count after a {cfg.warmup_s:.0f} s warm-up", rows),
        Table("servers (RSS: the server's processes after the runs, PostgreSQL apart)", servers),
    ]
    checks = targets({lv.clients: lv for lv in results.get(TARGETED, [])})
    section.notes += [f"target on '{TARGETED}': {name}: {'met' if ok else 'MISSED'}" for name, ok in checks.items()]
    for v, msg in failed.items():  # the end of the message: the server's last lines
        section.notes.append(f"{v} did not serve: {' / '.join([ln for ln in msg.splitlines() if ln.strip()][-3:])}")
    section.notes += [
        f"{v} x{lv.clients} first errors: {lv.first_errors}" for v, ls in results.items() for lv in ls if lv.errors
    ]
    section.notes.append(
        f"'today' = congruence/ at {TODAY_COMMIT}; 'now' = this tree; "
        f"store built in {built['generate'] + built['write_postgres']:.0f} s; {os.cpu_count()} cores shared "
        "by the clients, the server and PostgreSQL"
    )
    section.details = {
        "config": {**asdict(cfg), "today_commit": TODAY_COMMIT, "versions": VERSIONS},
        "levels": {v: [asdict(lv) for lv in levels] for v, levels in results.items()},
        "failed": failed,
        "targets": checks,
        "targets_met": all(checks.values()),
    }
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.serve_load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="10,000 influencers, 5 s per client count")
    p.add_argument("--out", type=Path, help="JSON result path (default bench/results/serve-load-<time>.json)")
    a = p.parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="congruence-serve-load-") as tmp:
        t = time.perf_counter()
        section = run(ServeLoadConfig.for_run(a.quick), Path(tmp))
        section.seconds = time.perf_counter() - t
    if a.out is None:
        return report_section(section, "serve-load", machine)
    print(format_section(section))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"machine": machine, "section": asdict(section)}, indent=1, default=str) + "\n")
    print(f"results in {a.out}")
    return 1 if section.details.get("targets_met") is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
