"""Shards on Ray Serve: each shard a Serve application (``congruence-shard-<i>``) of one
deployment with R replicas, from ``congruence serve --ray-address ADDR --shards N``.

Serve manages the replicas: it starts R of each shard, checks their health, restarts one
that dies and rolls a new deployment out. Each replica (``ShardReplica``) starts the plain
Ray actor that holds its shard and answers (``ShardWorker``, named
``congruence-shard-<i>-of-<n>@<store id>/<id>``) on its own node, waits until it has loaded,
and checks it at every health check (every 2 s; a thread of the worker's own); the worker
dies with its replica, and a worker that dies alone fails its replica's checks, so Serve
replaces both.

The ingress (``RayShard``) calls the workers directly: a plain actor call to four at once
took 4.4 ms p50 on 2 cores, against 14.5 ms through Serve's router over gRPC and 22.3 ms
through its object store (``python -m bench --only serve-calls``). It finds a shard's
workers by name, uses those that have loaded, in turn, and looks again every
``REFRESH_S`` and whenever one is gone. A call that meets a dead worker (Ray's actor-gone
errors: every call only reads) is sent to another; when none answers in time the request
gets a 503 naming the shard, never a shorter list. A timeout or any other error is not tried
again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from congruence.core.errors import CongruenceError
from congruence.core.settings import Settings
from congruence.ray.cluster import connect, import_ray, worker_settings
from congruence.search.filters import Filters
from congruence.search.ray_shard import HEALTH, NAMESPACE, WORKER, ShardReplica, store_id
from congruence.search.shards import ShardHealth, ShardUnavailable
from congruence.search.snapshot import Ranked, Scored

logger = logging.getLogger(__name__)
T = TypeVar("T")
APP = "congruence-shard-{i}"
_RUNNING = re.compile(r"congruence-shard-\d+-of-(\d+)@([^/]+)/")
CALL_TIMEOUT_S = 30.0  # a shard's answer, or a loaded worker to take the call, waited for this long
REFRESH_S = 5.0  # the ingress looks for a shard's workers again after this long
RELOOK_S = 0.5  # ... and after this long while none of them is up
HEALTH_CHECK_PERIOD_S = 2.0  # Serve checks each replica this often (it replaces one after 3 failures in a row)
POLL_S = 0.05  # while no worker of a shard has loaded, the ingress looks again this often
REPLICA_GONE = frozenset({"RayActorError", "ActorDiedError", "ActorUnavailableError", "ActorUnschedulableError"})


class RayShard:
    """The ingress's client of one shard (a ``ShardClient``): its calls go straight to the
    shard's loaded workers, in turn."""

    def __init__(self, i: int, n: int, store: str, timeout_s: float = CALL_TIMEOUT_S):
        self.i, self.n, self.store, self.timeout_s = i, n, store, timeout_s
        self._lock = threading.Lock()
        self._up: dict[str, Any] = {}  # name: handle, of the workers that answered ``ready``
        self._loading: dict[str, tuple[Any, Any]] = {}  # name: (handle, its pending ``ready``)
        self._seen = -np.inf  # when the workers were last looked for (time.monotonic)
        self._looking = False  # a thread is looking for them now
        self._turn = itertools.count()

    def _call(self, method: str, *args: object) -> Any:
        import ray

        deadline = time.monotonic() + self.timeout_s
        dead: set[str] = set()
        last: Exception | None = None
        while True:
            worker = self._pick(dead)
            wait = deadline - time.monotonic()
            if worker is not None and wait > 0:
                name, handle = worker
                ref = getattr(handle, method).remote(*args)
                try:
                    return ray.get(ref, timeout=wait)
                except Exception as e:  # noqa: BLE001 (Ray raises many kinds; the domain's pass through)
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, CongruenceError):
                        raise cause from None
                    if isinstance(e, CongruenceError):
                        raise
                    last = e
                    logger.warning("shard %d of %d, worker %s: %s: %s", self.i, self.n, name, type(e).__name__, e)
                    if type(e).__name__ not in REPLICA_GONE:  # a timeout or a bug: no second try
                        with contextlib.suppress(Exception):
                            ray.cancel(ref)
                        break
                    dead.add(name)
                    self._forget(name)
                    continue
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)  # no worker of this shard has loaded yet: look again
        why = type(last).__name__ if last is not None else "no replica has loaded"
        raise ShardUnavailable(f"shard {self.i} of {self.n} is unavailable ({why}): try again shortly")

    def _pick(self, dead: set[str]) -> tuple[str, Any] | None:
        """A loaded worker not in ``dead``, in turn; None when there is none yet. The workers
        are looked for again when the list is old (one thread looks, outside the lock; the
        others go on with the list they have)."""
        now = time.monotonic()
        with self._lock:
            known = self._up.keys() | self._loading.keys()
            age = REFRESH_S if self._up.keys() - dead else RELOOK_S
            look = now - self._seen > age and not self._looking
            self._looking |= look
        if look:
            found = None
            try:
                found = self._find(known)
            except Exception as e:  # noqa: BLE001 (the cluster's directory did not answer: keep the list)
                logger.warning("shard %d of %d: looking for its workers: %s: %s", self.i, self.n, type(e).__name__, e)
            with self._lock:
                self._looking, self._seen = False, now
                if found is not None:
                    self._merge(*found)
        with self._lock:
            self._promote()
            live = sorted(self._up.keys() - dead)
            if not live:
                return None
            name = live[next(self._turn) % len(live)]
            return name, self._up[name]

    def _find(self, known: set[str]) -> tuple[set[str], dict[str, Any]]:
        """The names of the shard's workers as Ray lists them now, and handles of those not in ``known``."""
        import ray

        prefix = WORKER.format(i=self.i, n=self.n, store=self.store)
        names = {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a.get("namespace") == NAMESPACE and a["name"].startswith(prefix)
        }
        new = {}
        for name in names - known:
            with contextlib.suppress(ValueError):  # gone since it was listed
                new[name] = ray.get_actor(name, namespace=NAMESPACE)
        return names, new

    def _merge(self, names: set[str], new: dict[str, Any]) -> None:
        """Keep the workers still listed; ask each new one whether it has loaded."""
        self._up = {k: v for k, v in self._up.items() if k in names}
        self._loading = {k: v for k, v in self._loading.items() if k in names}
        for name, handle in new.items():
            if name not in self._up and name not in self._loading:
                self._loading[name] = (handle, handle.ready.options(concurrency_group=HEALTH).remote())

    def _promote(self) -> None:
        """Use the workers that answered ``ready`` with True; drop those whose answer was an error."""
        import ray

        if not self._loading:
            return
        refs = [ref for _, ref in self._loading.values()]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for name in [n for n, (_, ref) in self._loading.items() if ref in done]:
            handle, ref = self._loading.pop(name)
            try:
                ok = ray.get(ref, timeout=0)
            except Exception:  # noqa: BLE001 (it died loading, or its load failed)
                ok = False
            if ok:
                self._up[name] = handle

    def _forget(self, name: str) -> None:
        with self._lock:
            self._up.pop(name, None)
            self._seen = -np.inf  # look again at the next call

    def search(
        self,
        generation: int,
        xq: np.ndarray,
        wanted: list[int],
        filters: Filters,
        brand_posts: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[Ranked], list[Scored]]:
        out: tuple[list[Ranked], list[Scored]] = self._call("search", generation, xq, wanted, filters, brand_posts)
        return out

    def rerank(self, generation: int, brand_posts: list[np.ndarray], candidates: list[np.ndarray]) -> list[Ranked]:
        out: list[Ranked] = self._call("rerank", generation, brand_posts, candidates)
        return out

    def post_vectors(self, generation: int, seqs: np.ndarray) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = self._call("post_vectors", generation, seqs)
        return out

    def health(self) -> ShardHealth:
        out: ShardHealth = self._call("health")
        return out


def serve_clients(n: int, store: str, timeout_s: float = CALL_TIMEOUT_S) -> list[RayShard]:
    """Clients of the ``n`` shards of ``store`` (its id) running on Ray Serve, as
    ``deploy_shards`` starts them (this process connected to their cluster)."""
    return [RayShard(i, n, store, timeout_s) for i in range(n)]


def running_shards() -> set[tuple[int, str]]:
    """(shard count, store id) of the shard workers running on the cluster (one, when all is well)."""
    import ray

    names = (a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == NAMESPACE)
    return {(int(m.group(1)), m.group(2)) for m in map(_RUNNING.match, names) if m}


def deploy_shards(
    address: str,
    settings: Settings,
    shards: int,
    replicas: int,
    options: Callable[[int], dict] | None = None,
    timeout_s: float = CALL_TIMEOUT_S,
) -> list[RayShard]:
    """Start (or update) the ``shards`` Serve applications on the cluster at ``address`` and
    wait until every replica has loaded its shard; their clients, in shard order.
    options: extra deployment options of shard i (tests: ``health_check_period_s``)."""
    if shards < 1 or replicas < 1:
        raise CongruenceError(f"--shards and --replicas must be at least 1, got {shards} and {replicas}")
    cluster = connect(address)
    import_ray()
    from ray import serve

    wsettings = worker_settings(settings, cluster)
    store = store_id(settings)
    serve.start(http_options={"location": "NoServer"})
    for i in range(shards):
        opts: dict[str, Any] = {
            "name": "shard",
            "num_replicas": replicas,
            "ray_actor_options": {"num_cpus": 0},
            "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        }
        opts |= (options or (lambda _: {}))(i)
        app = serve.deployment(**opts)(ShardReplica).bind(wsettings, i, shards, store)
        try:
            serve.run(app, name=APP.format(i=i), route_prefix=None)
        except Exception as e:  # noqa: BLE001 (a replica's constructor failed: say which shard)
            raise ShardUnavailable(f"shard {i} of {shards} did not start: {e}") from None
    logger.info("%d shards x %d replicas on Ray Serve at %s", shards, replicas, address)
    return serve_clients(shards, store, timeout_s)


def shutdown_shards(shards: int) -> None:
    from ray import serve

    for i in range(shards):
        serve.delete(APP.format(i=i))
