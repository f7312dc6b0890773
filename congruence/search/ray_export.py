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
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from congruence.core.device import resolve_device
from congruence.core.settings import Settings
from congruence.indexer.ray_cluster import (
    actor_pool,
    connect,
    import_ray,
    placement,
    placements,
    run_pipeline,
    worker_settings,
)
from congruence.indexer.store import Store
from congruence.indexer.vector_store import VectorStore
from congruence.search.engine import Engine
from congruence.search.export_rank import BatchRanker, RankedRows
from congruence.search.filters import Filters
from congruence.search.snapshot import Snapshot, VectorReader

logger = logging.getLogger(__name__)
Batch = dict[str, np.ndarray]


class _RankActor:
    """Holds a snapshot and a store connection; ranks one chunk of brands a call."""

    def __init__(self, settings: Settings, snapshot: list[Any], k: int, filters: Filters):
        snap: Snapshot = import_ray().get(snapshot[0])  # wrapped in a list: Ray Data passes it as is
        device = resolve_device(settings.device)
        if snap.head is not None and device.type == "cuda":
            snap = dataclasses.replace(snap, head=snap.head.to(device))  # the GPU Ray gave this actor
        reader = VectorReader(VectorStore(Store.open(settings)))  # this actor's own connection
        self.ranker = BatchRanker(snap, reader, k, filters, settings.candidates)
        self.placement = placement(str(snap.head.device) if snap.head is not None else "cpu")

    def __call__(self, batch: Batch) -> Batch:
        ranked = [pickle.dumps(self.ranker.rank(json.loads(str(b))), protocol=5) for b in batch["brands"]]
        return {"chunk": batch["chunk"], "ranked": np.array(ranked, dtype=object),
                "placement": np.array([self.placement] * len(ranked), dtype=object)}


def _shippable(snap: Snapshot) -> Snapshot:
    """``snap`` without what cannot travel: a GPU copy of the index, a head on CUDA (and
    without its cached filter selections, which each actor rebuilds for its one filter)."""
    index = copy.copy(snap.index)
    index.__dict__.pop("_gpu", None)
    head = snap.head
    if head is not None and head.device.type != "cpu":
        head = copy.deepcopy(head).to("cpu")
    return dataclasses.replace(snap, index=index, head=head, selections={})


def _dataset(snap: Snapshot, settings: Settings, k: int, filters: Filters, rows: list[dict[str, Any]],
             actors: int, gpus_per_actor: int) -> Any:
    """The ranking pipeline: one row per chunk, ``map_batches`` over a pool of ``_RankActor``."""
    ray = import_ray()
    ref = ray.put(snap)
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    return ds.map_batches(_RankActor, fn_constructor_kwargs={"settings": settings, "snapshot": [ref], "k": k,
                                                             "filters": filters},
                          batch_size=1, batch_format="numpy", compute=actor_pool(actors, len(rows)),
                          num_gpus=gpus_per_actor)


@dataclass(frozen=True)
class RayRanker:
    """Ranks export chunks on a Ray cluster.

    settings: the driver's, with the database URL the workers connect to; actors: how many
    rank actors at most; gpus_per_actor: 1 when the cluster has GPUs and CONGRUENCE_DEVICE
    is not cpu, else 0; address: the cluster's, as given. ``seen`` collects where the
    actors ran (``ray_cluster.placement``), for the export's report.
    """

    settings: Settings
    actors: int
    gpus_per_actor: int
    address: str = ""
    seen: set[str] = field(default_factory=set, compare=False)

    @classmethod
    def connect(cls, address: str, engine: Engine, actors: int | None = None) -> RayRanker:
        """Connect to the cluster at ``address`` (see ``ray_cluster.connect``) and size the job."""
        cluster = connect(address)
        gpus = cluster.gpus_per_actor(engine.settings.device)
        settings = worker_settings(engine.settings, cluster, engine.store.url)
        return cls(settings, actors or cluster.default_actors(gpus), gpus, address)

    def report(self) -> dict[str, Any]:
        """What ran where: the address, the pool's size, GPUs per actor, each actor's placement."""
        return {"address": self.address, "actors": self.actors, "gpus_per_actor": self.gpus_per_actor,
                "placements": placements(self.seen)}

    def rank(self, snap: Snapshot, k: int, filters: Filters,
             chunks: Mapping[int, Sequence[str]]) -> Iterator[tuple[int, RankedRows]]:
        """(chunk number, its rows) for every chunk, in the order they finish."""
        if not chunks:
            return
        logger.info("ranking %d chunks on Ray: %d actors, %d GPU each", len(chunks), min(self.actors, len(chunks)),
                    self.gpus_per_actor)
        rows = [{"chunk": i, "brands": json.dumps(list(b))} for i, b in chunks.items()]
        build = functools.partial(_dataset, _shippable(snap), self.settings, k, filters, rows, self.actors,
                                  self.gpus_per_actor)
        for out in run_pipeline(build):
            self.seen.update(str(p) for p in out["placement"])
            for i, ranked in zip(out["chunk"], out["ranked"], strict=True):
                yield int(i), pickle.loads(ranked)
