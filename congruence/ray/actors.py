"""A pool of actors on a Ray cluster running one batch stage: the setup every job shares.

A job (ingest's encode stage, export's ranking) connects once (``Actors.connect``: the
workers' settings, how many actors, one GPU each on a cluster with GPUs), then maps rows
through an actor class (``Actors.map``: a Ray Data ``map_batches`` over a fixed pool, run by
``cluster.run_pipeline``) and keeps where each actor ran. Each actor's batch answer carries a
``placement`` column (``cluster.placement``) for that record.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from congruence.core.settings import Settings
from congruence.ray.cluster import Batch, actor_pool, connect, import_ray, placements, run_pipeline, worker_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actors:
    """settings: the driver's, with the database URL the workers connect to; actors: how many
    actors a stage runs at most; gpus_per_actor: 1 on a cluster with GPUs and
    CONGRUENCE_DEVICE not cpu, else 0; address: the cluster's, as given. ``seen`` collects
    where the actors of each stage ran."""

    settings: Settings
    actors: int
    gpus_per_actor: int
    address: str = ""
    seen: dict[str, set[str]] = field(default_factory=dict, compare=False)

    @classmethod
    def connect(cls, address: str, settings: Settings, url: str | None = None, actors: int | None = None) -> Actors:
        """Connect to the cluster at ``address`` (``cluster.connect``) and size the pool; ``url``:
        the database the workers use (default: the driver's, or its embedded one)."""
        cluster = connect(address)
        gpus = cluster.gpus_per_actor(settings.device)
        return cls(worker_settings(settings, cluster, url), actors or cluster.default_actors(gpus), gpus, address)

    def map(
        self,
        stage: str,
        rows: list[dict[str, Any]],
        actor: type,
        kwargs: Mapping[str, Any],
        *,
        batch_size: int,
        n_blocks: int,
        put: Mapping[str, Any] | None = None,
    ) -> Iterator[Batch]:
        """The output batches of ``actor`` (constructed with ``kwargs``, plus each value of ``put``
        stored once in the object store and passed as a one-item list) over ``rows``, in
        ``n_blocks`` blocks, as they finish."""
        logger.info(
            "%s on Ray: %d rows, %d actors, %d GPU each",
            stage,
            len(rows),
            min(self.actors, n_blocks),
            self.gpus_per_actor,
        )
        build = functools.partial(
            _dataset, rows, n_blocks, actor, dict(kwargs), dict(put or {}), batch_size, self.actors, self.gpus_per_actor
        )
        seen = self.seen.setdefault(stage, set())
        for out in run_pipeline(build):
            seen.update(str(p) for p in out["placement"])
            yield out

    def placements(self, stage: str) -> list[dict[str, Any]]:
        """Where the actors of ``stage`` ran: node, pid, gpu_ids, device, each once."""
        return placements(self.seen.get(stage, set()))


def _dataset(
    rows: list[dict[str, Any]],
    n_blocks: int,
    actor: type,
    kwargs: dict[str, Any],
    put: dict[str, Any],
    batch_size: int,
    actors: int,
    gpus_per_actor: int,
) -> Any:
    """One stage's pipeline: the work list, ``map_batches`` over a pool of ``actor``. Built where
    it runs (the cluster, for a Ray Client driver), so ``put`` happens there too."""
    ray = import_ray()
    refs = {k: [ray.put(v)] for k, v in put.items()}  # wrapped in a list: Ray Data passes it as is
    ds = ray.data.from_items(rows, override_num_blocks=n_blocks)
    return ds.map_batches(
        actor,
        fn_constructor_kwargs={**kwargs, **refs},
        batch_size=batch_size,
        batch_format="numpy",
        compute=actor_pool(actors, n_blocks),
        num_gpus=gpus_per_actor,
    )
