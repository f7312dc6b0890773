"""Export's ranking on a Ray cluster: chunks of brands ranked by actors, written by the driver.

Every actor holds the driver's snapshot (FAISS index, influencer table and head, put in
the object store once, so each actor ranks against exactly what the driver would) and its
own PostgreSQL connection for brand vectors and per-post vectors, and ranks one chunk a
call with ``export_rank.BatchRanker``, the code of the local path, on the same brands per
FAISS call: the rows are the local rows, score for score (on CPU; a head on GPU rounds
differently). The driver writes each chunk as it arrives (``export_files``), so resuming
and the atomic final file work as they do locally.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from congruence.core.settings import Settings
from congruence.indexer.ray_cluster import (
    actor_pool,
    connect,
    import_ray,
    worker_settings,
)
from congruence.indexer.store import Store
from congruence.indexer.vector_store import VectorStore
from congruence.search.engine import Engine, Snapshot
from congruence.search.export_rank import BatchRanker, RankedRows
from congruence.search.filters import Filters

logger = logging.getLogger(__name__)
Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class _EngineView:
    """What ``BatchRanker`` reads of an ``Engine``: a snapshot, a vector store, its lock, settings."""

    snapshot: Snapshot
    vstore: VectorStore
    _lock: threading.RLock
    settings: Settings

    def current(self) -> Snapshot:
        """The shipped snapshot: an actor ranks against the driver's version, never a newer one."""
        return self.snapshot


class _RankActor:
    """Holds a snapshot and a store connection; ranks one chunk of brands a call."""

    def __init__(self, settings: Settings, snapshot: list[Any], k: int, filters: Filters):
        snap: Snapshot = import_ray().get(snapshot[0])  # wrapped in a list: Ray Data passes it as is
        if snap.head is not None and settings.device == "cuda" and torch.cuda.is_available():
            snap = dataclasses.replace(snap, head=snap.head.to("cuda"))  # as deploy.load_active places it
        view = _EngineView(snap, VectorStore(Store.open(settings)), threading.RLock(), settings)
        self.ranker = BatchRanker(cast(Engine, view), k, filters)

    def __call__(self, batch: Batch) -> Batch:
        ranked = [pickle.dumps(self.ranker.rank(json.loads(str(b))), protocol=5) for b in batch["brands"]]
        return {"chunk": batch["chunk"], "ranked": np.array(ranked, dtype=object)}


def _shippable(snap: Snapshot) -> Snapshot:
    """``snap`` without what cannot travel: a GPU copy of the index, a head on CUDA."""
    index = copy.copy(snap.index)
    index.__dict__.pop("_gpu", None)
    head = snap.head
    if head is not None and head.device.type != "cpu":
        head = copy.deepcopy(head).to("cpu")
    return dataclasses.replace(snap, index=index, head=head)


@dataclass(frozen=True)
class RayRanker:
    """Ranks export chunks on a Ray cluster.

    settings: the driver's, with the database URL the workers connect to; actors: how many
    rank actors at most; gpus_per_actor: 1 when the cluster has GPUs and CONGRUENCE_DEVICE
    is cuda (the head's device locally too), else 0.
    """

    settings: Settings
    actors: int
    gpus_per_actor: int

    @classmethod
    def connect(cls, address: str, engine: Engine, actors: int | None = None) -> RayRanker:
        """Connect to the cluster at ``address`` (see ``ray_cluster.connect``) and size the job."""
        cluster = connect(address)
        gpus = cluster.gpus_per_actor("cpu" if engine.settings.device != "cuda" else "cuda")
        settings = worker_settings(engine.settings, cluster, engine.store.url)
        return cls(settings, actors or cluster.default_actors(gpus), gpus)

    def rank(self, snap: Snapshot, k: int, filters: Filters,
             chunks: Mapping[int, Sequence[str]]) -> Iterator[tuple[int, RankedRows]]:
        """(chunk number, its rows) for every chunk, in the order they finish."""
        if not chunks:
            return
        ray = import_ray()
        logger.info("ranking %d chunks on Ray: %d actors, %d GPU each", len(chunks), min(self.actors, len(chunks)),
                    self.gpus_per_actor)
        ref = ray.put(_shippable(snap))
        rows = [{"chunk": i, "brands": json.dumps(list(b))} for i, b in chunks.items()]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.map_batches(_RankActor, fn_constructor_kwargs={"settings": self.settings, "snapshot": [ref],
                                                               "k": k, "filters": filters},
                            batch_size=1, batch_format="numpy", compute=actor_pool(self.actors, len(rows)),
                            num_gpus=self.gpus_per_actor)
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, ranked in zip(out["chunk"], out["ranked"], strict=True):
                yield int(i), pickle.loads(ranked)
