"""The ingest runner: read → validate → store → encode → pool → index, incrementally."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.indexer.account_metrics.recompute import MetricsReport
from congruence.indexer.account_metrics.recompute import recompute as recompute_metrics
from congruence.indexer.corpus import CorpusReader, RowError, read_corpus
from congruence.indexer.encode import Progress, encode_images, encode_texts
from congruence.indexer.index_sync import SyncResult
from congruence.indexer.pool import pool_features
from congruence.indexer.prepare import prepare_posts
from congruence.indexer.publish import Spaces, publish
from congruence.store import follower_history
from congruence.store.records import Store
from congruence.store.vectors import VectorStore

if TYPE_CHECKING:  # Ray is an optional extra, imported only when a cluster is named
    from congruence.indexer.ray_encode import RayEncoder

logger = logging.getLogger(__name__)
POOL_CHUNK = 2000


@dataclass(frozen=True)
class IndexSummary:
    """One space's index after an ingest: its size and kind, what changed, and why."""

    size: int
    kind: str
    codec: str
    added: int
    removed: int
    rebuilt: bool
    reason: str

    @classmethod
    def of(cls, res: SyncResult) -> IndexSummary:
        man = res.manifest
        return cls(man.count, man.kind, man.codec, res.added, res.removed, res.rebuilt, res.reason)


@dataclass
class IngestReport:
    accounts_new: int = 0
    accounts_updated: int = 0
    posts_new: int = 0
    posts_updated: int = 0
    matches_new: int = 0
    follower_snapshots: int = 0  # follower counts that changed, dated (store.follower_history)
    images_encoded: int = 0
    texts_encoded: int = 0
    accounts_pooled: int = 0
    index: IndexSummary | None = None  # the pooled space's
    derived_indexes: dict[str, IndexSummary] = field(default_factory=dict)  # by space (the head's)
    rejected: list[RowError] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: MetricsReport | None = None

    @property
    def exit_code(self) -> int:
        return 2 if self.rejected else 0

    def to_dict(self) -> dict[str, object]:
        """The report as ``ingest --json`` prints it (the derived spaces' indexes inside ``index``)."""
        counts = ["accounts_new", "accounts_updated", "posts_new", "posts_updated", "matches_new", "follower_snapshots"]
        counts += ["images_encoded", "texts_encoded", "accounts_pooled"]
        index = asdict(self.index) if self.index is not None else {}
        return {
            **{k: getattr(self, k) for k in counts},
            "index": index | {space: asdict(s) for space, s in self.derived_indexes.items()},
            "seconds": self.seconds,
            "metrics": self.metrics.to_dict() if self.metrics is not None else {},
            "rejected": [{"file": e.file, "line": e.line, "reason": e.reason} for e in self.rejected],
        }


class _Timer:
    def __init__(self, report: IngestReport, name: str):
        self.report, self.name = report, name

    def __enter__(self) -> None:
        self.t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.report.seconds[self.name] = round(time.perf_counter() - self.t, 3)


def ingest(
    folder: Path,
    settings: Settings,
    progress: Progress | None = None,
    spaces: Spaces = (),
    ray_address: str | None = None,
    read: CorpusReader = read_corpus,
    metrics_last_n: int | None = None,
) -> IngestReport:
    """Ingest a corpus folder into the store and the index; see docs/formats.md for the formats.

    spaces: derived spaces (the active congruence head) brought up to date with the pooled one,
    or a function giving them (``training.deploy.in_service``), asked under the publishing lock.
    ray_address: encode on this Ray cluster (indexer.ray_encode); everything else stays here.
    read: the corpus reader (indexer.formats: Instaloader folders, CSV/Parquet tables).
    metrics_last_n: the posts the account metrics use (None: the last one given, else 12);
    every account's metrics are recomputed after the rows are stored (``indexer.account_metrics``).
    """
    report = IngestReport()
    encs = EncoderSet(settings)
    runner = _ray_encoder(ray_address, settings) if ray_address is not None else None
    with Store.open(settings) as store:
        vstore = VectorStore(store)
        ids = encs.model_ids(store)
        with _Timer(report, "store"):
            _store_rows(folder, store, ids, report, read)
        with _Timer(report, "encode"):
            encode_pending(vstore, encs, ids, settings.batch_size, report, progress, runner)
        with _Timer(report, "metrics"):  # after encoding, which drops posts whose image turns out broken
            report.metrics = recompute_metrics(store, metrics_last_n)
        with _Timer(report, "pool"):
            report.accounts_pooled = pool_dirty(store, vstore, ids)
        changed = bool(
            report.accounts_new
            or report.accounts_updated
            or report.posts_new
            or report.posts_updated
            or report.accounts_pooled
            or report.rejected
        )
        with _Timer(report, "index"):  # the head's vectors, every index, then one publication
            _, results = publish(store, settings, ids, spaces, changed=changed)
        report.index = IndexSummary.of(results[ids.pooled_space])
        report.derived_indexes = {s: IndexSummary.of(r) for s, r in results.items() if s != ids.pooled_space}
    return report


def _ray_encoder(address: str, settings: Settings) -> RayEncoder:
    from congruence.indexer.ray_encode import RayEncoder

    return RayEncoder.connect(address, settings)


def _store_rows(folder: Path, store: Store, ids: ModelIds, report: IngestReport, read: CorpusReader) -> None:
    cache: dict[str, str | None] = {}

    def known(acc_id: str) -> str | None:
        if acc_id not in cache:
            cache[acc_id] = store.account_kinds([acc_id]).get(acc_id)
        return cache[acc_id]

    corpus = read(folder, known)
    report.rejected.extend(corpus.errors)
    report.accounts_new, report.accounts_updated = store.upsert_accounts(corpus.accounts)
    report.follower_snapshots = follower_history.record(store, corpus.accounts)
    known_images = _known_image_hashes(store, ids.image)
    posts, errors = prepare_posts(corpus.posts, corpus.root, known_images)
    report.rejected.extend(errors)
    report.rejected.sort(key=lambda e: (e.file, e.line))
    report.posts_new, report.posts_updated = store.upsert_posts(posts)
    report.matches_new = store.upsert_matches(corpus.matches)


def _known_image_hashes(store: Store, model_id: int) -> set[str]:
    rows = store.conn.execute("SELECT content_hash FROM vectors WHERE model_id = %s", (model_id,))
    return {r[0] for r in rows}


def encode_pending(
    vstore: VectorStore,
    encs: EncoderSet,
    ids: ModelIds,
    batch_size: int,
    report: IngestReport,
    progress: Progress | None = None,
    runner: RayEncoder | None = None,
) -> None:
    """Encode what has no vector yet, here or (with ``runner``) on a Ray cluster."""
    if vstore.pending_images(ids.image):
        n, failed = (
            runner.images(vstore, ids.image, progress)
            if runner is not None
            else encode_images(vstore, encs.image_infer, ids.image, batch_size, progress)
        )
        report.images_encoded = n
        for h, reason in failed:
            # the file changed or broke after it was checked: drop its posts, report them
            gone = vstore.store.delete_posts_with_image(h)
            report.rejected += [RowError("posts.jsonl", 0, f"post {pid!r}: {reason}") for pid in gone]
    if vstore.pending_texts(ids.text):
        report.texts_encoded = (
            runner.texts(vstore, ids.text, progress)
            if runner is not None
            else encode_texts(vstore, encs.text, ids.text, batch_size, progress)
        )


def pool_dirty(store: Store, vstore: VectorStore, ids: ModelIds) -> int:
    """Recompute the pooled vector of every account whose posts changed."""
    dirty = vstore.dirty_accounts()
    done = 0
    for i in range(0, len(dirty), POOL_CHUNK):
        chunk = dirty[i : i + POOL_CHUNK]
        sets = vstore.post_sets(ids.image, ids.text, ids.d_image, ids.d_text, account_ids=chunk)
        vecs = [pool_features(sets.posts_of(j), ids.d_image) for j in range(len(sets))]
        n_posts = [int(sets.offsets[j + 1] - sets.offsets[j]) for j in range(len(sets))]
        if vecs:
            vstore.put_account_vectors(
                ids.pooled_space, sets.account_ids, np.stack(vecs), n_posts, ids.d_image + ids.d_text
            )
        empty = sorted(set(chunk) - set(sets.account_ids))
        if empty:
            vstore.clear_dirty(empty, ids.pooled_space)
        done += len(sets)
    return done
