"""Connecting the batch jobs (ingest's encode stage, export) to a Ray cluster.

Ray is an optional extra (``pip install 'congruence[ray]'``): it is imported here, and only
when a caller names a cluster (``--ray-address``); nothing else in the package imports it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from congruence.core.errors import CongruenceError, StoreUnavailable
from congruence.core.settings import Settings
from congruence.indexer import database

logger = logging.getLogger(__name__)
RAY_MISSING = "Ray is not installed: pip install 'congruence[ray]'"
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


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

    address: 'auto' (the cluster started on this machine by ``ray start``), 'ray://HOST:PORT'
    (Ray Client), 'HOST:PORT' (a head's GCS), or 'local' (a fresh single-machine cluster).
    The connection lasts as long as the process (``ray.shutdown()`` ends it sooner).
    """
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except Exception as e:  # ConnectionError, ValueError, RuntimeError: Ray raises many kinds
            raise CongruenceError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    # the driver reports its own progress; Ray Data's bars would interleave with it
    ray.data.DataContext.get_current().enable_progress_bars = False
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
            "node can reach (see docs/scale-out.md)")
    return settings.with_(database_url=url or database.database_url(settings))
