"""Connecting the batch jobs (ingest's encode stage, export) to a Ray cluster.

Ray is an optional extra (``pip install 'congruence[ray]'``): it is imported here, and only
when a caller names a cluster (``--ray-address``); nothing else in the package imports it.

Both jobs are Ray Data pipelines (``map_batches`` over a pool of actors that hold the
encoder or the head). ``run_pipeline`` runs one: on the driver when it is connected to the
cluster directly (``auto``, ``HOST:PORT``, ``local``), and on the cluster itself when the
driver is a Ray Client (``ray://``), because Ray Data's executor needs a core worker that a
client does not have (Ray 2.60: ``'Worker' object has no attribute 'core_worker'``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from congruence.core.errors import CongruenceError, StoreUnavailable
from congruence.core.settings import Settings
from congruence.store import database

logger = logging.getLogger(__name__)
RAY_MISSING = "Ray is not installed: pip install 'congruence[ray]'"
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
# A Ray Client connection makes the head's proxier fork a server for it, and that fork can die
# at birth (a gRPC poller race in the proxier, ray-project/ray#63202: a few % of connections,
# "Initialization failure from server"); a new connection forks a new server
CLIENT_ATTEMPTS = 3
CLIENT_RETRY_S = 2.0
_CLIENT_SERVER_DIED = ("Initialization failure from server", "Starting Ray client server failed")


@dataclass(frozen=True)
class Cluster:
    """The cluster a job runs on. address: as given; cpus, gpus: totals; nodes: alive nodes."""

    address: str
    cpus: int
    gpus: int
    nodes: int

    @property
    def spans_machines(self) -> bool:
        """Whether a worker may run on a machine other than this one."""
        if self.nodes > 1:
            return True
        if self.address.startswith("ray://"):
            return (urlsplit(self.address).hostname or "") not in LOOPBACK
        return False  # a driver not in client mode talks to a raylet on its own machine

    def gpus_per_actor(self, device: str) -> int:
        """1 when the cluster has GPUs and the settings allow CUDA, else 0 (CPU actors)."""
        return 1 if self.gpus > 0 and device != "cpu" else 0

    def default_actors(self, gpus_per_actor: int) -> int:
        """One actor per GPU, or per CPU on a cluster without GPUs."""
        return max(1, self.gpus if gpus_per_actor else self.cpus)


def import_ray() -> ModuleType:
    """The ``ray`` module (with Ray Data), or a clear error when the extra is not installed."""
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError:
        raise CongruenceError(RAY_MISSING) from None
    return ray


def connect(address: str) -> Cluster:
    """Connect this process to the cluster at ``address``, once; later calls reuse the connection.

    address: 'auto' (the cluster RAY_ADDRESS names, else the one ``ray start`` started on
    this machine), 'ray://HOST:PORT' (Ray Client: needs ``ray[client]``, in the extra), 'HOST:PORT'
    (a head's GCS), or 'local' (a fresh single-machine cluster).
    The connection lasts as long as the process (``ray.shutdown()`` ends it sooner).
    """
    ray = import_ray()
    attempts = CLIENT_ATTEMPTS if address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        if ray.is_initialized():
            break
        try:
            # log_to_driver=False: actors' output would otherwise be copied to this process's
            # stdout and break --json; their logs stay in each node's Ray session folder
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as e:  # ConnectionError, ValueError, RuntimeError: Ray raises many kinds
            if attempt == attempts or not any(m in str(e) for m in _CLIENT_SERVER_DIED):
                raise CongruenceError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
            logger.warning(
                "Ray Client connection %d of %d to %s failed: the head's server for it died at start "
                "(ray-project/ray#63202); connecting again",
                attempt,
                attempts,
                address,
            )
            ray.shutdown()
            time.sleep(CLIENT_RETRY_S)
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cluster = Cluster(address, int(res.get("CPU", 0)), int(res.get("GPU", 0)), nodes)
    logger.info("Ray cluster %s: %d nodes, %d CPUs, %d GPUs", address, cluster.nodes, cluster.cpus, cluster.gpus)
    return cluster


def actor_pool(actors: int, inputs: int) -> Any:
    """A fixed pool of ``actors`` actors, fewer when there are fewer inputs (blocks) than that."""
    return import_ray().data.ActorPoolStrategy(size=max(1, min(actors, inputs)))


def worker_settings(settings: Settings, cluster: Cluster, url: str | None = None) -> Settings:
    """``settings`` for the workers: the database URL resolved (``url``, or the embedded one).

    Workers write to and read from the same PostgreSQL as the driver, so an embedded server
    (reachable from this machine only) is refused when the cluster spans machines.
    """
    if settings.database_url is None and cluster.spans_machines:
        raise StoreUnavailable(
            f"the embedded PostgreSQL under {settings.home} is reachable from this machine only, not from the "
            f"Ray cluster at {cluster.address!r}: set DATABASE_URL to a PostgreSQL with pgvector that every "
            "node can reach (see docs/scale-out.md)"
        )
    return settings.with_(database_url=url or database.database_url(settings))


Batch = dict[str, np.ndarray]


def is_client(ray: ModuleType) -> bool:
    """Whether this process is connected through Ray Client (a ``ray://`` address)."""
    return bool(ray.util.client.ray.is_connected())


def _batches(build: Callable[[], Any]) -> Iterator[Batch]:
    # the driver reports its own progress; Ray Data's bars would interleave with it
    import_ray().data.DataContext.get_current().enable_progress_bars = False
    yield from build().iter_batches(batch_size=None, batch_format="numpy")


class _PipelineRunner:
    """Runs a Ray Data pipeline inside the cluster for a Ray Client driver; hands out its batches."""

    def __init__(self, build: Callable[[], Any]):
        self.batches = _batches(build)

    def next(self) -> Batch | None:
        return next(self.batches, None)


def run_pipeline(build: Callable[[], Any]) -> Iterator[Batch]:
    """The output batches of the Ray Data dataset ``build()`` returns, as they finish.

    ``build`` must be picklable (a module-level function or a ``functools.partial`` of one):
    for a Ray Client driver it is sent to an actor on the cluster, which builds and runs
    the dataset there and hands its batches back one by one.
    """
    ray = import_ray()
    if not is_client(ray):
        yield from _batches(build)
        return
    runner = ray.remote(num_cpus=0)(_PipelineRunner).remote(build)
    try:
        while (batch := ray.get(runner.next.remote())) is not None:
            yield batch
    finally:
        ray.kill(runner)


def placement(device: str) -> str:
    """Where an actor runs, as JSON: its node, the GPUs Ray gave it, the torch device it uses."""
    ray = import_ray()
    gpus = [int(g) if str(g).isdigit() else str(g) for g in ray.get_gpu_ids()]
    return json.dumps(
        {"node": ray.util.get_node_ip_address(), "pid": os.getpid(), "gpu_ids": gpus, "device": device}, sort_keys=True
    )


def placements(seen: set[str]) -> list[dict[str, Any]]:
    """The distinct actor placements seen, each once: node, pid, gpu_ids, device."""
    return [json.loads(p) for p in sorted(seen)]
