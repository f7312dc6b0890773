"""Shards on Ray Serve: each shard a Serve application (``congruence-shard-<i>``) of one
deployment with R replicas, each replica a ``ShardServer``; the ingress reaches them through
Serve's handles (``ServeShard``), from ``congruence serve --ray-address ADDR --shards N``.

One query's calls go to the replicas over Serve's gRPC transport (``_by_reference=False``): on
2 cores a call of four shards at once took 14.5 ms p50 that way, against 22.3 ms through Ray's
object store (``python -m bench --only serve-calls``). gRPC carries at most 4 MiB a message,
so batches (an export's chunk of brands) and per-post vectors go through the object store.

A replica that dies is restarted by Serve. A call that meets a dead replica (Ray's
actor-gone errors, and gRPC's UNAVAILABLE and CANCELLED: every call only reads) is sent
again, to another replica when there is one; when no replica takes it in time, the request
gets a 503 naming the shard, never a shorter list. A timeout or any other error is not
tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from congruence.core.errors import CongruenceError
from congruence.core.settings import Settings
from congruence.ray.cluster import connect, import_ray, worker_settings
from congruence.search.filters import Filters
from congruence.search.shards import ShardHealth, ShardServer, ShardUnavailable
from congruence.search.snapshot import Ranked, Scored

logger = logging.getLogger(__name__)
T = TypeVar("T")
APP = "congruence-shard-{i}"
CALL_TIMEOUT_S = 30.0  # a shard's answer, or a replica to take the call, waited for this long
ATTEMPTS = 3  # a call that met a replica dying is sent again this many times in all
REPLICA_GONE = frozenset({"RayActorError", "ActorDiedError", "ActorUnavailableError", "ActorUnschedulableError"})
GRPC_GONE = frozenset({"UNAVAILABLE", "CANCELLED"})  # status codes of a replica going away mid-call
GRPC_MAX_BYTES = 1 << 20  # a call whose arrays pass this goes through the object store (gRPC: 4 MiB at most)


class ShardReplica:
    """One replica of one shard (the class Serve deploys)."""

    def __init__(self, settings: Settings, i: int, n: int):
        import faiss
        import torch

        logging.getLogger("congruence").info("shard %d of %d: loading", i, n)
        # one query a call: a thread each (OpenMP's spinning threads, one per core in every
        # replica, would fight over the cores the other replicas answer on)
        faiss.omp_set_num_threads(1)
        torch.set_num_threads(1)
        self.server = ShardServer(settings, i, n)

    def search(
        self,
        generation: int,
        xq: np.ndarray,
        wanted: list[int],
        filters: Filters,
        brand_posts: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[Ranked], list[Scored]]:
        return self.server.search(generation, xq, wanted, filters, brand_posts)

    def rerank(self, generation: int, brand_posts: list[np.ndarray], candidates: list[np.ndarray]) -> list[Ranked]:
        return self.server.rerank(generation, brand_posts, candidates)

    def post_vectors(self, generation: int, seqs: np.ndarray) -> dict[int, np.ndarray]:
        return self.server.post_vectors(generation, seqs)

    def health(self) -> ShardHealth:
        return self.server.health()

    def check_health(self) -> None:
        """Serve's periodic check: the replica answers and holds its shard. (Not PostgreSQL:
        the pool reconnects by itself, and a database restart must not restart every replica.)"""
        assert self.server.engine.snapshot is not None


class ServeShard:
    """The ingress's client of one shard on Serve (a ``ShardClient``). ``handle``: the Serve
    handle (through Ray's object store); one query's calls take its gRPC twin."""

    def __init__(self, handle: Any, i: int, n: int, timeout_s: float = CALL_TIMEOUT_S):
        self.handle, self.i, self.n, self.timeout_s = handle, i, n, timeout_s
        self.fast = handle.options(_by_reference=False)

    def _call(self, method: str, *args: object, fast: bool = False) -> Any:
        handle = self.fast if fast else self.handle
        last: Exception | None = None
        for _ in range(ATTEMPTS):  # a replica that died mid-call: again, to another replica
            try:
                return getattr(handle, method).remote(*args).result(timeout_s=self.timeout_s)
            except Exception as e:  # noqa: BLE001 (Ray raises many kinds; the domain's pass through)
                cause = getattr(e, "cause", None)
                if isinstance(cause, CongruenceError):
                    raise cause from None
                if isinstance(e, CongruenceError):
                    raise
                last = e
                logger.warning("shard %d of %d: %s: %s", self.i, self.n, type(e).__name__, e)
                if not _gone(e):  # a timeout or a bug: no second try
                    break
        raise ShardUnavailable(f"shard {self.i} of {self.n} is unavailable ({type(last).__name__}): try again shortly")

    def search(
        self,
        generation: int,
        xq: np.ndarray,
        wanted: list[int],
        filters: Filters,
        brand_posts: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[Ranked], list[Scored]]:
        fast = len(xq) == 1 and _small([xq, *(brand_posts or [])])
        out: tuple[list[Ranked], list[Scored]] = self._call(
            "search", generation, xq, wanted, filters, brand_posts, fast=fast
        )
        return out

    def rerank(self, generation: int, brand_posts: list[np.ndarray], candidates: list[np.ndarray]) -> list[Ranked]:
        fast = len(brand_posts) == 1 and _small([*brand_posts, *candidates])
        out: list[Ranked] = self._call("rerank", generation, brand_posts, candidates, fast=fast)
        return out

    def post_vectors(self, generation: int, seqs: np.ndarray) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = self._call("post_vectors", generation, seqs)  # an answer of any size
        return out

    def health(self) -> ShardHealth:
        out: ShardHealth = self._call("health")
        return out


def _small(arrays: Sequence[np.ndarray | None]) -> bool:
    """Whether these arrays fit a gRPC call with room to spare (``GRPC_MAX_BYTES``)."""
    return sum(a.nbytes for a in arrays if a is not None) <= GRPC_MAX_BYTES


def _gone(e: Exception) -> bool:
    """Whether ``e`` says the replica went away (so another may answer), not that the call failed."""
    if type(e).__name__ in REPLICA_GONE:
        return True
    code = getattr(e, "code", None)  # grpc.aio.AioRpcError
    status = code() if callable(code) else None
    return getattr(status, "name", None) in GRPC_GONE


def serve_clients(n: int, timeout_s: float = CALL_TIMEOUT_S) -> list[ServeShard]:
    """Clients of the ``n`` shard apps running on Ray Serve, as ``deploy_shards`` makes them
    (this process connected to their cluster)."""
    from ray import serve

    return [ServeShard(serve.get_app_handle(APP.format(i=i)), i, n, timeout_s) for i in range(n)]


def deploy_shards(
    address: str,
    settings: Settings,
    shards: int,
    replicas: int,
    options: Callable[[int], dict] | None = None,
    timeout_s: float = CALL_TIMEOUT_S,
) -> list[ServeShard]:
    """Start (or update) the ``shards`` Serve applications on the cluster at ``address`` and
    wait until every replica has loaded its shard; their clients, in shard order.
    options: extra deployment options of shard i (tests: ``health_check_period_s``)."""
    if shards < 1 or replicas < 1:
        raise CongruenceError(f"--shards and --replicas must be at least 1, got {shards} and {replicas}")
    cluster = connect(address)
    import_ray()
    from ray import serve

    wsettings = worker_settings(settings, cluster)
    serve.start(http_options={"location": "NoServer"})
    clients = []
    for i in range(shards):
        opts: dict[str, Any] = {"name": "shard", "num_replicas": replicas, "ray_actor_options": {"num_cpus": 0}}
        opts |= (options or (lambda _: {}))(i)
        app = serve.deployment(**opts)(ShardReplica).bind(wsettings, i, shards)
        try:
            handle = serve.run(app, name=APP.format(i=i), route_prefix=None)
        except Exception as e:  # noqa: BLE001 (a replica's constructor failed: say which shard)
            raise ShardUnavailable(f"shard {i} of {shards} did not start: {e}") from None
        clients.append(ServeShard(handle, i, shards, timeout_s))
    logger.info("%d shards x %d replicas on Ray Serve at %s", shards, replicas, address)
    return clients


def shutdown_shards(shards: int) -> None:
    from ray import serve

    for i in range(shards):
        serve.delete(APP.format(i=i))
