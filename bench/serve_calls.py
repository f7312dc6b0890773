"""What a call to the shards costs on Ray, before any work: ``python -m bench --only serve-calls``.

Four replicas of a method that returns at once what a shard returns for one query (200 seqs
and scores), on a local Ray cluster of this machine's cores. The ways the ingress can reach
them, one call and four at once (a match calls every shard once):

- Ray Serve handles through Ray's object store (Serve's default);
- Ray Serve handles over Serve's gRPC transport (``_by_reference=False``);
- plain Ray actor calls: what ``search.ray_serve``'s ingress makes, to the workers that
  Serve's replicas start and supervise.

Medians, p99 and each way's ratio to the plain actors, all in one process and one run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, Section, Table, sample_latency, stats

SHARDS = 4


class _Shard:
    def search(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(200, dtype=np.int64), np.zeros(200, np.float32)


def run(calls: int, tmp: Path) -> Section:
    import ray
    from ray import serve

    section = Section(f"serve calls: {SHARDS} replicas answering at once, {calls} calls each way")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp))
    try:
        serve.start(http_options={"location": "NoServer"})
        opts: dict[str, Any] = {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}}
        handles = [
            serve.run(serve.deployment(name="shard", **opts)(_Shard).bind(), name=f"bench-shard-{i}", route_prefix=None)
            for i in range(SHARDS)
        ]
        grpc = [h.options(_by_reference=False) for h in handles]
        actors: list[Any] = [ray.remote(num_cpus=0)(_Shard).remote() for _ in range(SHARDS)]
        xq = np.zeros((1, 256), np.float32)

        def serve_calls(hs: list[Any], n: int) -> Callable[[int], object]:
            return lambda _: [r.result() for r in [h.search.remote(xq) for h in hs[:n]]]

        def actor_calls(n: int) -> Callable[[int], object]:
            return lambda _: ray.get([a.search.remote(xq) for a in actors[:n]])

        ways = {
            "Serve, object store": lambda n: serve_calls(handles, n),
            "Serve, gRPC": lambda n: serve_calls(grpc, n),
            "plain Ray actors": actor_calls,
        }
        rows: list[Row] = []
        for n in (1, SHARDS):
            times = {name: stats(sample_latency(make(n), calls, warmup=20)) for name, make in ways.items()}
            base = times["plain Ray actors"].median_ms
            rows += [
                {
                    "replicas called": n,
                    "way": name,
                    "p50 ms": s.median_ms,
                    "p99 ms": s.p99_ms,
                    "x plain actors (p50)": s.median_ms / base,
                }
                for name, s in times.items()
            ]
        for i in range(SHARDS):
            serve.delete(f"bench-shard-{i}")
    finally:
        ray.shutdown()
    section.tables.append(Table("one query's call to the shards, no work in them", rows))
    section.details = {"rows": rows, "cores": os.cpu_count()}
    return section
