"""What ``congruence status`` reports: the store's counts, the models, the ranking in use and
the state of the index in service (whether it still matches PostgreSQL)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from congruence.indexer.index import Manifest
from congruence.indexer.index_sync import is_stale
from congruence.search.engine import Engine
from congruence.search.snapshot import Snapshot
from congruence.store.rows import Counts
from congruence.store.vectors import VectorStore


@dataclass(frozen=True)
class IndexState:
    """The index in service: live vectors, kind, model and space, dimensions, and why it no
    longer matches PostgreSQL (None while it does)."""

    size: int
    kind: str
    model: str
    space: str
    dim: int
    stale_reason: str | None

    @property
    def stale(self) -> bool:
        return self.stale_reason is not None


@dataclass(frozen=True)
class Status:
    counts: Counts
    embedded_posts: int
    image_model: str
    text_model: str
    head: str | None  # the version in service
    ranking: str  # how the scores are computed, in words
    index: IndexState

    def to_dict(self) -> dict[str, object]:
        """As ``status --json`` prints it."""
        return {
            **self.counts.to_dict(),
            "embedded_posts": self.embedded_posts,
            "models": {"image": self.image_model, "text": self.text_model, "head": self.head},
            "ranking": self.ranking,
            "index": {
                **{k: v for k, v in asdict(self.index).items() if k != "stale_reason"},
                "stale": self.index.stale,
                "stale_reason": self.index.stale_reason,
            },
        }


def status(engine: Engine) -> Status:
    snap, ids = engine.snapshot, engine.ids
    index = snap.index
    with engine.reading() as store:
        vstore = VectorStore(store)
        state = IndexState(
            index.n_alive,
            index.kind,
            snap.model,
            snap.space,
            index.dim,
            is_stale(vstore, _manifest(snap), snap.space, snap.model),
        )
        counts, embedded = store.counts(), vstore.count_embedded_posts(ids.image, ids.text)
    return Status(
        counts,
        embedded,
        ids.image_name,
        ids.text_name,
        snap.head.version if snap.head is not None else None,
        engine.ranking(),
        state,
    )


def _manifest(snap: Snapshot) -> Manifest:
    """The manifest the index in service would have, from its live vectors."""
    seq_ver = snap.index.live_versions()
    return Manifest(
        snap.space, snap.model, snap.index.dim, snap.index.kind, len(seq_ver), int(sum(seq_ver.values())), 0.0, {}
    )
