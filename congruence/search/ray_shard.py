"""What runs on the cluster for one shard (see ``search.ray_serve``): Serve's replica
(``ShardReplica``) and the plain Ray actor it starts, which holds the shard and answers
(``ShardWorker``). This module imports nothing heavy, so that a replica, which only
supervises, does not load torch or FAISS; the worker imports them when it starts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from congruence.core.errors import CongruenceError
from congruence.core.settings import Settings
from congruence.ray.cluster import import_ray

if TYPE_CHECKING:
    import numpy as np

    from congruence.search.filters import Filters
    from congruence.search.shards import ShardHealth
    from congruence.search.snapshot import Ranked, Scored

NAMESPACE = "congruence"
# a worker's name: this, then its replica's id (store: the id of the store it serves)
WORKER = "congruence-shard-{i}-of-{n}@{store}/"
HEALTH_TIMEOUT_S = 10.0  # a replica's health check waits this long for its worker
WORKER_THREADS = 8  # queries a worker answers at once (FAISS and torch release the GIL)
HEALTH = "health"  # a worker's concurrency group for ``ready`` (its own thread)


class ShardWorker:
    """One replica's shard: the data and the work (a plain, threaded Ray actor)."""

    def __init__(self, settings: Settings, i: int, n: int, store: str):
        import faiss
        import torch

        from congruence.search.shards import ShardServer

        held = store_id(settings)
        if held != store:  # its name would lie: an ingress of that store would use it
            raise CongruenceError(
                f"shard {i} of {n} was started for store {store}, and its database holds store {held}:"
                " start the shards with the ingress's own DATABASE_URL"
            )
        logging.getLogger("congruence").info("shard %d of %d: loading", i, n)
        # one thread a query (OpenMP's spinning threads, one per core in every worker, would
        # fight over the cores the other shards answer on)
        faiss.omp_set_num_threads(1)
        torch.set_num_threads(1)
        self.server = ShardServer(settings, i, n)

    def ready(self) -> bool:
        return self.server.engine.snapshot is not None

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


class ShardReplica:
    """One replica of one shard (the class Serve deploys): it starts its ``ShardWorker`` and
    is up once the worker has loaded the shard."""

    def __init__(self, settings: Settings, i: int, n: int, store: str):
        ray = import_ray()
        name = WORKER.format(i=i, n=n, store=store) + uuid.uuid4().hex[:12]
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # the health checks in a thread of their own: queries that fill the others must not fail them
        actor = ray.remote(concurrency_groups={HEALTH: 1})(ShardWorker).options(
            name=name,
            namespace=NAMESPACE,
            num_cpus=0,
            max_concurrency=WORKER_THREADS,
            max_restarts=0,
            # on this replica's node: where Serve placed the replica is where the shard lives
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
            # every thread's OpenMP default (omp_set_num_threads is the calling thread's only)
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
        self.worker = actor.remote(settings, i, n, store)  # owned by this replica: it dies with it
        ray.get(self.worker.ready.options(concurrency_group=HEALTH).remote())
        logging.getLogger("congruence").info("shard %d of %d: up as %s", i, n, name)

    def check_health(self) -> None:
        """Serve's periodic check: the worker answers and holds its shard. (Not PostgreSQL: the
        pool reconnects by itself, and a database restart must not restart every replica.)"""
        import ray

        if not ray.get(self.worker.ready.options(concurrency_group=HEALTH).remote(), timeout=HEALTH_TIMEOUT_S):
            raise RuntimeError("the shard worker holds no snapshot")


def store_id(settings: Settings) -> str:
    """The id of the store ``settings`` name: what its shard workers are named with (drawn on
    first use; copies of a database, by ``pg_dump`` or as a template, keep the original's)."""
    import psycopg

    from congruence.store import database
    from congruence.store.records import Store

    url = database.database_url(settings)
    with database.connect(url, autocommit=True) as conn:  # not Store.open: a read-only role cannot migrate
        try:
            return Store(conn, url).store_id()
        except psycopg.Error as e:  # none yet, and this role cannot draw it
            raise CongruenceError(
                f"this store has no id yet, and this role cannot write it ({type(e).__name__}):"
                " a writer (`congruence shards build`) draws it"
            ) from None
