"""Reading a published generation into a ``Snapshot``: the index folder the publication names,
the head published with it, the influencer table and its filter columns. Reads only: files on
disk and PostgreSQL; an index or a head the previous snapshot holds already is shared."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from congruence.core.errors import ModelMismatch
from congruence.core.memory import release_free_memory
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import ModelIds
from congruence.indexer.index import IndexCorrupt, VectorIndex
from congruence.indexer.publish import GENERATION_KEY, PUBLISHED_KEY, NotPublished, Publication
from congruence.safety.screen import screen_version
from congruence.search.metric_filters import load_metrics
from congruence.search.safety import load_safety
from congruence.search.snapshot import Snapshot
from congruence.store.collab_index import load_collabs
from congruence.store.pool import StorePool
from congruence.store.records import Shard
from congruence.training.deploy import ACTIVE_KEY, check_encoders, head_space, load_version
from congruence.training.model import CongruenceHead

logger = logging.getLogger(__name__)
RETRY_LOAD_S = 2.0  # a generation that failed to load is tried again after this long
PUBLISH_HINT = "publish it: `congruence serve` does at start-up, as do ingest, train and delete"


class SnapshotLoader:
    """Loads the published generation of a store for an engine (shard: of one shard's index)."""

    def __init__(self, settings: Settings, pool: StorePool, ids: ModelIds, shard: Shard | None = None):
        self.settings, self.pool, self.ids, self.shard = settings, pool, ids, shard

    def load(self, previous: Snapshot | None) -> Snapshot:
        """The published generation as a snapshot, sharing ``previous``'s index and head
        where the publication kept them. Reads only: files on disk and PostgreSQL."""
        with self.pool.reading() as store:
            meta = store.meta_values([GENERATION_KEY, PUBLISHED_KEY, ACTIVE_KEY])
        if PUBLISHED_KEY not in meta:
            raise NotPublished(f"nothing is published in this store yet: {PUBLISH_HINT}")
        generation, pub = int(meta.get(GENERATION_KEY, 0)), Publication.from_json(meta[PUBLISHED_KEY])
        head = self.head(meta.get(ACTIVE_KEY) or None, previous)
        space, model = (
            (head_space(head.version), head_space(head.version))
            if head
            else (self.ids.pooled_space, self.ids.pooled_model)
        )
        index = self.index(pub, space, model, previous)
        with self.pool.reading() as store:
            table = store.account_table("influencer", shard=self.shard)  # a shard's: its accounts alone
            safety = load_safety(store, table, screen_version(self.settings))
            metrics = load_metrics(store, table)
            collabs = load_collabs(store, table)
        release_free_memory()
        rows = np.full(int(table.seq.max()) + 1 if len(table.seq) else 1, -1, np.int32)
        rows[table.seq] = np.arange(len(table.seq))
        held = index.labels[index.alive]
        gone = held[(held >= len(rows)) | (rows[np.minimum(held, len(rows) - 1)] < 0)]
        live = index.select(index.alive & ~np.isin(index.labels, gone)) if len(gone) else None
        return Snapshot(index, table, rows, model, space, head, generation, safety, metrics, live, collabs)

    def head(self, version: str | None, previous: Snapshot | None) -> CongruenceHead | None:
        if version is None:
            return None
        if previous is not None and previous.head is not None and previous.head.version == version:
            return previous.head
        head = load_version(self.settings, version)
        check_encoders(head, self.ids)
        return head

    def index(self, pub: Publication, space: str, model: str, previous: Snapshot | None) -> VectorIndex:
        entry = pub.indexes.get(space)
        if self.shard is not None:
            i, n = self.shard
            shards = pub.shards.get(space, ())
            if len(shards) != n:
                raise NotPublished(
                    f"shard {i}: {n} shards of {space!r} are not published ({len(shards)} are):"
                    f" run `congruence shards build --shards {n}`"
                )
            entry = shards[i]
        if entry is None:
            raise NotPublished(f"no index of {space!r} is published: {PUBLISH_HINT}")
        folder = entry.path(self.settings.index_dir).resolve()  # as a loaded index names its source
        if previous is not None and previous.index.source == folder:
            return previous.index
        # auto: IVF-PQ shards are the layout for accounts past memory, their files on disk
        mode = self.settings.post_vectors
        paged = mode == "paged" or (mode == "auto" and entry.kind == "ivfpq")
        index, man = VectorIndex.load(folder.parent, folder.name, mapped=True, paged=paged)
        if (man.model, man.count, man.version_sum) != (model, entry.count, entry.version_sum):
            raise IndexCorrupt(f"the index under {folder} is not the one published for {space!r}")
        index.ef_search = self.settings.ef_search
        logger.info("loaded the published index %s (%d accounts)", entry.folder, index.n_alive)
        return index


class Published:
    """The snapshot an engine answers with, swapped whole when the store's generation moves."""

    def __init__(self, loader: SnapshotLoader):
        self.loader = loader
        self._lock = threading.Lock()  # one load at a time
        self.load_error: str | None = None  # why the newest generation could not be loaded
        self._failed: tuple[int, float] | None = None  # (generation, when) of the last failed load
        self.snapshot = loader.load(None)

    def refresh(self) -> None:
        with self._lock:
            self.snapshot = self.loader.load(self.snapshot)
            self.load_error, self._failed = None, None

    def current(self) -> Snapshot:
        """The snapshot to answer with, reloaded first when the store's generation moved since
        it was taken (an ingest, a deletion, a new head, by any process): an answer never
        predates a change that was published before the query started. When the newest
        generation cannot be loaded (its files pruned or damaged meanwhile), the one loaded
        before answers, and ``load_error`` says why."""
        with self.loader.pool.reading() as store:
            generation = int(store.meta_values([GENERATION_KEY]).get(GENERATION_KEY, 0))
        if generation == self.snapshot.generation or self._failed_recently(generation):
            return self.snapshot
        with self._lock:
            if self.snapshot.generation != generation and not self._failed_recently(generation):
                try:
                    self.snapshot = self.loader.load(self.snapshot)
                    self.load_error, self._failed = None, None
                except (IndexCorrupt, ModelMismatch, NotPublished) as e:
                    self.load_error, self._failed = f"generation {generation}: {e}", (generation, time.monotonic())
                    logger.warning("serving generation %d: cannot load %s", self.snapshot.generation, self.load_error)
            return self.snapshot

    def _failed_recently(self, generation: int) -> bool:
        """Whether loading ``generation`` failed less than ``RETRY_LOAD_S`` ago (queries do not
        all queue behind a load that fails)."""
        failed = self._failed
        return failed is not None and failed[0] == generation and time.monotonic() - failed[1] < RETRY_LOAD_S
