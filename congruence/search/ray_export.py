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
import json
import logging
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from congruence.core.device import resolve_device
from congruence.core.settings import Settings
from congruence.ray.actors import Actors
from congruence.ray.cluster import Batch, import_ray, placement
from congruence.search.engine import Engine
from congruence.search.export_rank import BatchRanker, RankedRows
from congruence.search.filters import Filters
from congruence.search.snapshot import Snapshot, VectorReader
from congruence.store.records import Store

logger = logging.getLogger(__name__)
STAGE = "rank"


class _RankActor:
    """Holds a snapshot and a store connection; ranks one chunk of brands a call."""

    def __init__(self, settings: Settings, snapshot: list[Any], k: int, filters: Filters):
        snap: Snapshot = import_ray().get(snapshot[0])  # wrapped in a list: Ray Data passes it as is
        device = resolve_device(settings.device)
        if snap.head is not None and device.type == "cuda":
            snap = dataclasses.replace(snap, head=snap.head.to(device))  # the GPU Ray gave this actor
        reader = VectorReader.of_store(Store.open(settings))  # this actor's own connection
        self.ranker = BatchRanker(snap, reader, k, filters, settings.candidates)
        self.placement = placement(str(snap.head.device) if snap.head is not None else "cpu")

    def __call__(self, batch: Batch) -> Batch:
        ranked = [pickle.dumps(self.ranker.rank(json.loads(str(b))), protocol=5) for b in batch["brands"]]
        return {
            "chunk": batch["chunk"],
            "ranked": np.array(ranked, dtype=object),
            "placement": np.array([self.placement] * len(ranked), dtype=object),
        }


def _shippable(snap: Snapshot) -> Snapshot:
    """``snap`` without what cannot travel: a GPU copy of the index, a head on CUDA (and
    without its cached filter selections, which each actor rebuilds for its one filter)."""
    index = copy.copy(snap.index)
    index.__dict__.pop("_gpu", None)
    head = snap.head
    if head is not None and head.device.type != "cpu":
        head = copy.deepcopy(head).to("cpu")
    return dataclasses.replace(snap, index=index, head=head, selections={})


@dataclass(frozen=True)
class RayRanker:
    """Ranks export chunks on a Ray cluster, on a pool of rank actors (``ray.actors.Actors``)."""

    pool: Actors

    @classmethod
    def connect(cls, address: str, engine: Engine, actors: int | None = None) -> RayRanker:
        """Connect to the cluster at ``address`` (see ``ray.cluster.connect``) and size the job."""
        return cls(Actors.connect(address, engine.settings, engine.pool.url, actors))

    def report(self) -> dict[str, Any]:
        """What ran where: the address, the pool's size, GPUs per actor, each actor's placement."""
        return {
            "address": self.pool.address,
            "actors": self.pool.actors,
            "gpus_per_actor": self.pool.gpus_per_actor,
            "placements": self.pool.placements(STAGE),
        }

    def rank(
        self, snap: Snapshot, k: int, filters: Filters, chunks: Mapping[int, Sequence[str]]
    ) -> Iterator[tuple[int, RankedRows]]:
        """(chunk number, its rows) for every chunk, in the order they finish."""
        if not chunks:
            return
        rows = [{"chunk": i, "brands": json.dumps(list(b))} for i, b in chunks.items()]
        kwargs = {"settings": self.pool.settings, "k": k, "filters": filters}
        for out in self.pool.map(
            STAGE, rows, _RankActor, kwargs, batch_size=1, n_blocks=len(rows), put={"snapshot": _shippable(snap)}
        ):
            for i, ranked in zip(out["chunk"], out["ranked"], strict=True):
                yield int(i), pickle.loads(ranked)
