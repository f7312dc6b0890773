"""Load test: N concurrent clients against the real server (`congruence serve`) for S seconds.

``python -m bench.load [--quick] [--clients 50] [--seconds 60] [--runs 2]``

The demo store is built in a temporary CONGRUENCE_HOME (`congruence demo --no-serve`:
corpus, ingest, a trained head), the server runs as its own process on loopback, and
client threads send a mix of match (50 %), similar (30 %) and explain (20 %, Grad-CAM)
requests until the time is up. Reported per route: requests, errors (anything but 200),
p50/p99 latency, requests/s; and the server's resident memory after each run, so growth
between runs shows a leak. Exit status 1 when any request failed or memory grew by more
than 10 % from the first run to the last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx
import numpy as np
import psutil

from bench.common import Section, Table, format_section, machine_info
from congruence.store.embedded_pg import scratch_dir, stop_embedded

ROOT = Path(__file__).resolve().parents[1]
CONGRUENCE = [sys.executable, "-m", "congruence"]
MIX = (("match", 0.5), ("similar", 0.3), ("explain", 0.2))


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 50
    seconds: float = 60.0
    runs: int = 2
    seed: int = 0

    @classmethod
    def for_run(cls, quick: bool) -> LoadConfig:
        return cls(clients=10, seconds=10.0) if quick else cls()


@dataclass(frozen=True)
class Sample:
    route: str
    status: int
    seconds: float
    error: str = ""


class Workload:
    """Requests drawn from the store's real ids."""

    def __init__(self, url: str):
        with httpx.Client(base_url=url, timeout=60) as c:
            self.brands = [
                b["id"] for b in c.get("/v1/accounts", params={"kind": "brand", "limit": 1000}).json()["data"]
            ]
            infl = c.get("/v1/accounts", params={"kind": "influencer", "limit": 5000}).json()["data"]
            self.influencers = [i["id"] for i in infl]
            self.posts = [
                p["post_id"]
                for i in self.influencers[:40]
                for p in c.get(f"/v1/accounts/{i}", params={"posts": 5}).json()["posts"]
                if p["image_url"]
            ]

    def request(self, rng: random.Random, client: httpx.Client) -> Sample:
        route = rng.choices([r for r, _ in MIX], [w for _, w in MIX])[0]
        t = time.perf_counter()
        if route == "match":
            body: dict[str, object] = {"brand_id": rng.choice(self.brands), "k": rng.choice([10, 20, 50])}
            if rng.random() < 0.5:
                body["micro"] = True
            r = client.post("/v1/match", json=body)
        elif route == "similar":
            r = client.get(f"/v1/influencers/{rng.choice(self.influencers)}/similar", params={"k": 20})
        else:
            r = client.get("/v1/explain", params={"brand": rng.choice(self.brands), "post": rng.choice(self.posts)})
        return Sample(route, r.status_code, time.perf_counter() - t, "" if r.status_code == 200 else r.text[:300])


def _client(url: str, work: Workload, seed: int, until: float, out: list[Sample]) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as client:
        while time.monotonic() < until:
            try:
                out.append(work.request(rng, client))
            except httpx.HTTPError as e:
                out.append(Sample("transport", 0, 0.0, f"{type(e).__name__}: {e}"))


def run_load(url: str, work: Workload, cfg: LoadConfig, run: int) -> list[Sample]:
    until = time.monotonic() + cfg.seconds
    per_client: list[list[Sample]] = [[] for _ in range(cfg.clients)]
    threads = [
        threading.Thread(target=_client, args=(url, work, cfg.seed * 1000 + run * 100 + i, until, per_client[i]))
        for i in range(cfg.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [s for samples in per_client for s in samples]


def summarise(samples: list[Sample], seconds: float) -> list[dict[str, object]]:
    rows = []
    for route in sorted({s.route for s in samples}):
        mine = [s for s in samples if s.route == route]
        ok = np.array([s.seconds for s in mine if s.status == 200]) * 1000
        rows.append(
            {
                "route": route,
                "requests": len(mine),
                "errors": sum(s.status != 200 for s in mine),
                "p50_ms": float(np.percentile(ok, 50)) if len(ok) else None,
                "p99_ms": float(np.percentile(ok, 99)) if len(ok) else None,
                "req_per_s": len(mine) / seconds,
            }
        )
    return rows


def serve(home: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`congruence serve` on loopback; its output goes to ``log`` (an unread pipe would block it)."""
    env = {**os.environ, "CONGRUENCE_HOME": str(home), "CONGRUENCE_RATE_LIMIT": "0"}
    proc = subprocess.Popen(
        [*CONGRUENCE, "serve", "--no-auth", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {(home / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.5)


def run(cfg: LoadConfig, home: Path, port: int = 8791) -> Section:
    env = {**os.environ, "CONGRUENCE_HOME": str(home)}
    subprocess.run(
        [*CONGRUENCE, "demo", "--no-serve"],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = (home / "serve.log").open("wb")
    proc = serve(home, port, log)
    url = f"http://127.0.0.1:{port}"
    section = Section("load")
    try:
        work = Workload(url)
        server = psutil.Process(proc.pid)
        rss = [server.memory_info().rss / 2**20]
        runs = []
        first_errors: list[str] = []
        section.details["first_errors"] = first_errors
        for i in range(cfg.runs):
            samples = run_load(url, work, cfg, i)
            rss.append(server.memory_info().rss / 2**20)
            rows = summarise(samples, cfg.seconds)
            failed = [f"{x.route} {x.status}: {x.error}" for x in samples if x.status != 200]
            first_errors += failed[:10]
            runs.append(rows)
            section.tables.append(
                Table(f"run {i + 1}: {cfg.clients} clients for {cfg.seconds:.0f} s (server RSS {rss[-1]:.0f} MB)", rows)  # type: ignore[arg-type]
            )
        errors = sum(int(r["errors"]) for rows in runs for r in rows)  # type: ignore[call-overload]
        growth = (rss[-1] - rss[1]) / rss[1] if len(rss) > 2 else 0.0
        section.notes.append(
            f"server RSS (MB): after start {rss[0]:.0f}, after each run "
            + ", ".join(f"{m:.0f}" for m in rss[1:])
            + f"; growth from run 1 to the last {growth:+.1%}"
        )
        section.notes.append(f"errors: {errors}")
        section.details |= {
            "config": cfg.__dict__,
            "runs": runs,
            "rss_mb": rss,
            "errors": errors,
            "rss_growth": growth,
            "ok": errors == 0 and growth <= 0.10,
        }
    finally:
        section.details["server_log_tail"] = (home / "serve.log").read_text(errors="replace")[-3000:]
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    return section


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="10 clients for 10 s")
    p.add_argument("--clients", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--runs", type=int)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    cfg = LoadConfig.for_run(a.quick)
    cfg = LoadConfig(a.clients or cfg.clients, a.seconds or cfg.seconds, a.runs or cfg.runs, cfg.seed)
    tmp = scratch_dir("congruence-load-")  # the embedded PostgreSQL runs as its own user when we are root
    try:
        section = run(cfg, tmp / "home")
    finally:
        # the demo's embedded PostgreSQL outlives the CLI on purpose; a benchmark must not leave it
        stop_embedded(tmp / "home" / "pg")
        shutil.rmtree(tmp, ignore_errors=True)
    print(format_section(section))
    out = a.out or ROOT / "bench" / "results" / f"load-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine_info(), "section": section.details}, indent=2, default=str))
    print(f"wrote {out}")
    return 0 if section.details.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
