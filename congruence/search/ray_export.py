"""Export's ranking on a Ray cluster: chunks of brands ranked by actors, written by the driver.

A Ray Data pipeline: one row per chunk of brands, ``map_batches`` over a fixed pool of
``_RankActor`` actors (one per GPU on a cluster with GPUs, each asking Ray for one; else
one per CPU). Every actor holds the driver's snapshot (FAISS index, influencer table and
head, put in the object store once, so each actor ranks against exactly what the driver
would), the head on its GPU when it has one, and its own PostgreSQL connection for brand
vectors, and ranks one chunk a call with ``export_rank.BatchRanker`` over ``search.retrieve``,
the code of the local path, on the same brands per FAISS call: the rows are the local rows,
score for score, on CPU (a head on a GPU rounds differently, to about 1e-6). The driver writes each chunk as it
arrives (``export_files``), so resuming and the atomic final file work as they do locally.

A sharded engine's export (``ShardedEngine``, its shards on Ray Serve: ``ray_serve``) ships
no account: its snapshot's index is empty, and each actor reaches the shards' Serve apps
itself (``ShardRoute``), so ``retrieve`` fans out to the shards from the actors as it does
from the ingress. ``shards_on_serve`` finds those apps, or starts them for one export.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from congruence.core.device import resolve_device
from congruence.core.errors import CongruenceError
from congruence.core.settings import Settings
from congruence.ray.actors import Actors
from congruence.ray.cluster import Batch, connect, import_ray, placement
from congruence.search.engine import Engine
from congruence.search.export_rank import BatchRanker, RankedRows
from congruence.search.filters import Filters
from congruence.search.ray_serve import (
    APP,
    RayShard,
    deploy_shards,
    running_shards,
    serve_clients,
    shutdown_shards,
)
from congruence.search.ray_shard import store_id
from congruence.search.shards import Fanout, Shards
from congruence.search.snapshot import Snapshot, VectorReader
from congruence.store.records import Store

logger = logging.getLogger(__name__)
STAGE = "rank"


class _RankActor:
    """Holds a snapshot and a store connection; ranks one chunk of brands a call."""

    def __init__(
        self,
        settings: Settings,
        snapshot: list[Any],
        k: int,
        filters: Filters,
        shards: list[Any] | None = None,
        signals: str = "all",
    ):
        ray = import_ray()
        snap: Snapshot = ray.get(snapshot[0])  # wrapped in a list: Ray Data passes it as is
        if shards is not None:  # a sharded snapshot: the shards on Serve hold its accounts
            snap = dataclasses.replace(snap, shards=ray.get(shards[0]).connect())
        device = resolve_device(settings.device)
        if snap.head is not None and device.type == "cuda":
            snap = dataclasses.replace(snap, head=snap.head.to(device))  # the GPU Ray gave this actor
        reader = VectorReader.of_store(Store.open(settings))  # this actor's own connection
        self.ranker = BatchRanker(snap, reader, k, filters, settings.candidates, signals)
        self.placement = placement(str(snap.head.device) if snap.head is not None else "cpu")

    def __call__(self, batch: Batch) -> Batch:
        ranked = [pickle.dumps(self.ranker.rank(json.loads(str(b))), protocol=5) for b in batch["brands"]]
        return {
            "chunk": batch["chunk"],
            "ranked": np.array(ranked, dtype=object),
            "placement": np.array([self.placement] * len(ranked), dtype=object),
        }


@dataclass(frozen=True)
class ShardRoute:
    """How a rank actor reaches the shards of a sharded snapshot: the ``n`` shards of the
    store ``store`` (its id) on Ray Serve, the generation to ask them for, and (max seq + 1,)
    int16 the shard of each seq."""

    n: int
    store: str
    generation: int
    shard_of_seq: np.ndarray

    def connect(self) -> Shards:
        """The snapshot's ``Shards``, its clients on this process's Ray connection."""
        return Shards(Fanout(serve_clients(self.n, self.store)), self.generation, self.shard_of_seq)


def _shipped(snap: Snapshot) -> dict[str, Any]:
    """What the actors get: ``snap`` without what cannot travel (a GPU copy of the index, a
    head on CUDA, the cached filter selections, which each actor rebuilds for its one filter,
    the shards' clients) and, for a sharded snapshot, its ``ShardRoute``; its index is then
    the ingress's, empty: no account is shipped."""
    index = copy.copy(snap.index)
    index.__dict__.pop("_gpu", None)
    head = snap.head
    if head is not None and head.device.type != "cpu":
        head = copy.deepcopy(head).to("cpu")
    out: dict[str, Any] = {"snapshot": dataclasses.replace(snap, index=index, head=head, selections={}, shards=None)}
    if snap.shards is not None:
        shards = snap.shards
        if not isinstance(shards, Shards) or not all(isinstance(c, RayShard) for c in shards.fanout.clients):
            raise CongruenceError(
                "a Ray export of a sharded engine needs its shards on Ray Serve (see shards_on_serve)"
            )
        clients = [c for c in shards.fanout.clients if isinstance(c, RayShard)]
        out["shards"] = ShardRoute(len(clients), clients[0].store, shards.generation, shards.shard_of_seq)
    return out


@contextmanager
def shards_on_serve(address: str, settings: Settings, n: int) -> Iterator[list[RayShard]]:
    """Clients of the ``n`` shards on Ray Serve at ``address``: those running there (started by
    ``congruence serve --ray-address ADDR --shards N``), or, when none is, started for this
    export (one replica each, as ``deploy_shards`` does) and deleted after it."""
    connect(address)
    from ray import serve

    names = [APP.format(i=i) for i in range(n)]
    running = [name in serve.status().applications for name in names]
    if not any(running):
        logger.info("no shard on Ray Serve at %s: starting %d for this export", address, n)
        try:
            yield deploy_shards(address, settings, n, 1)
        finally:
            shutdown_shards(n)
        return
    if not all(running):
        missing = ", ".join(str(i) for i, up in enumerate(running) if not up)
        raise CongruenceError(f"shards {missing} of {n} are not on Ray Serve at {address!r}")
    store = store_id(settings)
    held = running_shards()
    if held != {(n, store)}:
        seen = ", ".join(f"{m} shards of store {s}" for m, s in sorted(held)) or "no shard worker"
        raise CongruenceError(
            f"the shards on Ray Serve at {address!r} serve {seen}, not {n} shards of this store ({store}):"
            f" restart them with `congruence serve --ray-address {address} --shards {n}` and this DATABASE_URL"
        )
    yield serve_clients(n, store)


@dataclass(frozen=True)
class RayRanker:
    """Ranks export chunks on a Ray cluster, on a pool of rank actors (``ray.actors.Actors``)."""

    pool: Actors
    shards: int = 0  # the shards on Ray Serve the actors rank against (0: each holds the index)

    @classmethod
    def connect(cls, address: str, engine: Engine, actors: int | None = None) -> RayRanker:
        """Connect to the cluster at ``address`` (see ``ray.cluster.connect``) and size the job."""
        shards = engine.snapshot.shards
        n = len(shards.fanout.clients) if isinstance(shards, Shards) else 0
        return cls(Actors.connect(address, engine.settings, engine.pool.url, actors), n)

    def report(self) -> dict[str, Any]:
        """What ran where: the address, the pool's size, GPUs per actor, each actor's placement,
        and how many shards on Ray Serve the actors ranked against (0: none, each held the index)."""
        return {
            "address": self.pool.address,
            "actors": self.pool.actors,
            "gpus_per_actor": self.pool.gpus_per_actor,
            "placements": self.pool.placements(STAGE),
            "shards": self.shards,
        }

    def rank(
        self, snap: Snapshot, k: int, filters: Filters, chunks: Mapping[int, Sequence[str]], signals: str = "all"
    ) -> Iterator[tuple[int, RankedRows]]:
        """(chunk number, its rows) for every chunk, in the order they finish."""
        if not chunks:
            return
        rows = [{"chunk": i, "brands": json.dumps(list(b))} for i, b in chunks.items()]
        kwargs = {"settings": self.pool.settings, "k": k, "filters": filters, "signals": signals}
        for out in self.pool.map(STAGE, rows, _RankActor, kwargs, batch_size=1, n_blocks=len(rows), put=_shipped(snap)):
            for i, ranked in zip(out["chunk"], out["ranked"], strict=True):
                yield int(i), pickle.loads(ranked)
