"""``congruence shards build --ray-address ADDR``: the shards' indexes built on a Ray cluster.

A Ray Data pipeline with one row a shard of a space: each task opens its own PostgreSQL
connection, reads its shard's accounts (``store.vectors.SHARD_SQL``) and brings that
shard's index up to date under the index folder, as ``sync_index`` does on one machine
(incrementally: a shard none of whose accounts changed is not written). The driver holds
the publishing lock meanwhile, then publishes every shard at once. The index folder must
be one the workers and the driver share (one machine, or a shared file system).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import numpy as np

from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.indexer.derived import update_space
from congruence.indexer.index_sync import layout_for, sync_index
from congruence.indexer.publish import Publication, Spaces, prepare, publishing, record, resolve_spaces
from congruence.ray.cluster import Batch, connect, import_ray, placement, run_pipeline, worker_settings
from congruence.store.records import Store
from congruence.store.vectors import VectorStore

logger = logging.getLogger(__name__)


def _build(batch: Batch, settings: Settings) -> Batch:
    """Sync the shard of each row; its size, whether it was written, and where it ran."""
    out: list[str] = []
    with Store.open(settings) as store:
        vstore = VectorStore(store)
        for row in batch["shard"]:
            space, model, post_dim, i, n = json.loads(str(row))
            res = sync_index(vstore, settings.index_dir, space, model, layout_for(settings, post_dim), shard=(i, n))
            out.append(json.dumps({"space": space, "shard": i, "accounts": res.manifest.count, "reason": res.reason}))
    return {"built": np.array(out, dtype=object), "placement": np.array([placement("cpu")] * len(out), dtype=object)}


def _dataset(rows: list[str], settings: Settings) -> Any:
    ray = import_ray()
    ds = ray.data.from_items([{"shard": r} for r in rows], override_num_blocks=len(rows))
    return ds.map_batches(_build, batch_size=1, fn_kwargs={"settings": settings})


def build_on_ray(
    settings: Settings, address: str, shards: int, spaces: Spaces = ()
) -> tuple[Publication, list[dict[str, Any]]]:
    """The pooled space and ``spaces`` (the head in service's) in ``shards`` shards, built on
    the cluster at ``address`` and published; (the publication, what each task did)."""
    cluster = connect(address)
    wsettings = worker_settings(settings, cluster)
    done: list[dict[str, Any]] = []
    with Store.open(settings) as store, publishing(store):
        vstore = VectorStore(store)
        ids = EncoderSet(settings).model_ids(store)
        spaces = resolve_spaces(spaces, store, ids)
        for derived in spaces:
            update_space(vstore, ids, derived)
        wanted = [(ids.pooled_space, ids.pooled_model, 0)] + [(d.space, d.model, d.dim) for d in spaces]
        rows = [json.dumps([s, m, d, i, shards]) for s, m, d in wanted for i in range(shards)]
        for batch in run_pipeline(functools.partial(_dataset, rows, wsettings)):
            for built, where in zip(batch["built"], batch["placement"], strict=True):
                done.append(json.loads(str(built)) | {"placement": json.loads(str(where))})
        ready = prepare(vstore, settings, ids, spaces, shards=shards)  # each shard found current: loaded, not built
        with store.conn.transaction():
            pub = record(store, ready.indexes, settings.index_dir, shards=ready.shards)
    logger.info("built %d shards on Ray at %s", len(done), address)
    return pub, done
