"""Publishing a generation: the one thing a serving engine loads.

Writers (ingest, deploy, delete) bring the derived vectors of the head in service and the
FAISS index of each space up to date, then publish: in one transaction they record which
index folder of each space is in service (``Publication``, in ``store_meta``) and move the
store's generation. A serving engine only reads: it notices the generation moved, loads the
published folders and the head recorded with them, and never writes to PostgreSQL nor
builds an index. One writer publishes at a time (a PostgreSQL advisory lock), so two
writers never save index generations over each other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from congruence.core.errors import StoreUnavailable
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import ModelIds
from congruence.indexer import ivf
from congruence.indexer.derived import DerivedSpace, update_space
from congruence.indexer.index import Manifest
from congruence.indexer.index_sync import IndexLayout, SyncResult, layout_for, space_dir, sync_index
from congruence.store.records import Store
from congruence.store.vectors import Shard, VectorStore

logger = logging.getLogger(__name__)
# the derived spaces to keep up to date (the head in service's), as of ``store``: asked under the
# publishing lock, so a head deployed meanwhile is the one published
SpacesOf = Callable[[Store, ModelIds], Sequence[DerivedSpace]]
Spaces = Sequence[DerivedSpace] | SpacesOf
GENERATION_KEY = "generation"
PUBLISHED_KEY = "published"
_PUBLISH_LOCK = 7_361_205  # advisory-lock key: one publishing writer at a time (migrations use 7_361_204)


class NotPublished(StoreUnavailable):
    """The store has no published generation a serving engine could load (yet)."""


@dataclass(frozen=True)
class PublishedIndex:
    """One space's index in service: its folder (``<space folder>/gen-...``, under the index
    root), and what its manifest says (checked by the engine when it loads it)."""

    space: str
    model: str
    folder: str
    count: int
    version_sum: int
    kind: str
    codec: str
    post_dim: int
    dim: int = 0

    @classmethod
    def of(cls, res: SyncResult, index_root: Path) -> PublishedIndex:
        man = res.manifest
        folder = res.folder.resolve().relative_to(index_root.resolve()).as_posix()
        return cls(man.space, man.model, folder, man.count, man.version_sum, man.kind, man.codec, man.post_dim, man.dim)

    def path(self, index_root: Path) -> Path:
        return index_root / self.folder


@dataclass(frozen=True)
class Publication:
    """What serving engines load: the generation it was published at, the index in service
    of each space (the pooled space, and the head's when one is in service) and, once
    ``shards build`` ran, each space's shards (their indexes, shard i at position i)."""

    generation: int
    indexes: Mapping[str, PublishedIndex] = field(default_factory=dict)
    published_at: float = 0.0
    shards: Mapping[str, tuple[PublishedIndex, ...]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"generation": self.generation, "published_at": self.published_at}
            | {"indexes": {s: asdict(p) for s, p in sorted(self.indexes.items())}}
            | {"shards": {s: [asdict(p) for p in ps] for s, ps in sorted(self.shards.items())}}
        )

    @classmethod
    def from_json(cls, text: str) -> Publication:
        try:
            doc = json.loads(text)
            indexes = {s: PublishedIndex(**p) for s, p in doc["indexes"].items()}
            shards = {s: tuple(PublishedIndex(**p) for p in ps) for s, ps in doc.get("shards", {}).items()}
            return cls(int(doc["generation"]), indexes, float(doc["published_at"]), shards)
        except (ValueError, KeyError, TypeError) as e:
            raise NotPublished(f"the store's publication record cannot be read ({e}): publish again") from None


def read_publication(store: Store) -> tuple[int, Publication | None]:
    """(the store's generation, the publication in service or None), in one read."""
    values = store.meta_values([GENERATION_KEY, PUBLISHED_KEY])
    pub = values.get(PUBLISHED_KEY)
    return int(values.get(GENERATION_KEY, 0)), Publication.from_json(pub) if pub else None


@contextlib.contextmanager
def publishing(store: Store) -> Iterator[None]:
    """Held while a writer brings indexes up to date and publishes them (a session lock)."""
    store.conn.execute("SELECT pg_advisory_lock(%s)", (_PUBLISH_LOCK,))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a broken connection has released it already
            store.conn.execute("SELECT pg_advisory_unlock(%s)", (_PUBLISH_LOCK,))


def record(
    store: Store,
    results: Mapping[str, SyncResult],
    index_root: Path,
    changed: bool = True,
    drop: Sequence[str] = (),
    shards: Mapping[str, Sequence[SyncResult]] | None = None,
) -> Publication:
    """Publish the indexes of ``results`` and the shards of ``shards`` (inside the caller's
    transaction, if any): they replace their spaces'; the others carry over unless in
    ``drop`` or a folder of theirs is gone. The generation moves when ``changed`` or any
    index did; returns the publication in service."""
    _, old = read_publication(store)
    indexes = {
        s: p
        for s, p in (old.indexes if old is not None else {}).items()
        if s not in drop and p.path(index_root).is_dir()
    }
    indexes.update({s: PublishedIndex.of(res, index_root) for s, res in results.items()})
    sharded = {
        s: ps
        for s, ps in (old.shards if old is not None else {}).items()
        if s not in drop and all(p.path(index_root).is_dir() for p in ps)
    }
    sharded.update({s: tuple(PublishedIndex.of(r, index_root) for r in rs) for s, rs in (shards or {}).items()})
    if old is not None and not changed and (dict(old.indexes), dict(old.shards)) == (indexes, sharded):
        return old
    pub = Publication(store.bump_generation(), indexes, time.time(), sharded)
    store.set_meta(PUBLISHED_KEY, pub.to_json())
    return pub


@dataclass(frozen=True)
class Prepared:
    """What a writer brought up to date: each space's index, and each sharded space's shards."""

    indexes: dict[str, SyncResult]
    shards: dict[str, list[SyncResult]]


def prepare(
    vstore: VectorStore,
    settings: Settings,
    ids: ModelIds,
    spaces: Sequence[DerivedSpace],
    verify: bool = False,
    shards: int | None = None,
) -> Prepared:
    """Every derived space's vectors and every space's index brought up to date with the
    store (by the caller holding ``publishing``), and its shards: ``shards`` of them (``shards
    build``), else as many as published before (none when never sharded). ``verify``: load each
    index and check its checksums even when the published record says it is current."""
    _, pub = read_publication(vstore.store)
    out = Prepared({}, {})
    wanted = [(ids.pooled_space, ids.pooled_model, 0)] + [(d.space, d.model, d.dim) for d in spaces]
    for derived in spaces:
        update_space(vstore, ids, derived)
    for space, model, post_dim in wanted:
        layout = layout_for(settings, post_dim)
        current = pub.indexes.get(space) if pub is not None and not verify else None
        out.indexes[space] = _synced(vstore, settings.index_dir, space, model, layout, current, None)
        old = pub.shards.get(space, ()) if pub is not None else ()
        n = shards or len(old)
        for i in range(n):
            current = old[i] if len(old) == n and not verify else None
            out.shards.setdefault(space, []).append(
                _synced(vstore, settings.index_dir, space, model, layout, current, (i, n))
            )
    return out


def resolve_spaces(spaces: Spaces, store: Store, ids: ModelIds) -> Sequence[DerivedSpace]:
    """``spaces``, or what they are as of ``store`` now (under the publishing lock)."""
    return spaces(store, ids) if callable(spaces) else spaces


def shard_count(pub: Publication | None) -> int:
    """How many shards the store's spaces are published in (0: not sharded)."""
    return max((len(ps) for ps in pub.shards.values()), default=0) if pub is not None else 0


def sync_shards(
    vstore: VectorStore, settings: Settings, space: str, model: str, post_dim: int, n: int
) -> list[SyncResult]:
    """The ``n`` shards of ``space`` brought up to date (a new head's space, by its deploy)."""
    layout = layout_for(settings, post_dim)
    return [_synced(vstore, settings.index_dir, space, model, layout, None, (i, n)) for i in range(n)]


def _synced(
    vstore: VectorStore,
    index_root: Path,
    space: str,
    model: str,
    layout: IndexLayout,
    current: PublishedIndex | None,
    shard: Shard | None,
) -> SyncResult:
    res = _still_current(vstore, index_root, current, model, layout, shard) if current else None
    if res is None:
        res = sync_index(vstore, index_root, space, model, layout, shard=shard)
        if res.rebuilt:
            where = space if shard is None else f"{space}, shard {shard[0]} of {shard[1]}"
            logger.info("index rebuilt from PostgreSQL: %s (%s)", res.reason, where)
    return res


def publish(
    store: Store,
    settings: Settings,
    ids: ModelIds,
    spaces: Spaces = (),
    changed: bool = False,
    verify: bool = False,
    shards: int | None = None,
) -> tuple[Publication, dict[str, SyncResult]]:
    """Bring the pooled space and ``spaces`` (the head in service's) up to date and publish
    them, with their shards (``prepare``); the generation moves when an index changed or
    ``changed`` (rows queries read did). Returns the publication and each space's index."""
    vstore = VectorStore(store)
    with publishing(store):
        done = prepare(vstore, settings, ids, resolve_spaces(spaces, store, ids), verify, shards)
        with store.conn.transaction():
            pub = record(store, done.indexes, settings.index_dir, changed, shards=done.shards)
    return pub, done.indexes


def _still_current(
    vstore: VectorStore,
    index_root: Path,
    current: PublishedIndex,
    model: str,
    layout: IndexLayout,
    shard: Shard | None = None,
) -> SyncResult | None:
    """The published index of a space (of a shard) as a result, when it still matches the
    store (checked against its manifest alone: no index is loaded); None when it must be synced."""
    folder = current.path(index_root)
    try:
        man = Manifest(**json.loads((folder / "manifest.json").read_text()))
        live = (space_dir(index_root, current.space, shard) / "current").resolve(strict=True)
    except (OSError, ValueError, TypeError):
        return None
    seq, ver = vstore.vector_state(current.space, "influencer", shard)
    if (
        live != folder.resolve()
        or man.model != model
        or (man.kind, man.codec, man.post_dim) != (*layout.shape_for(len(seq), shard is not None), layout.post_dim)
        or (man.kind == "ivfpq" and ivf.bits_of(man.checksums) != layout.refine_bits)
        or (man.count, man.version_sum) != (current.count, current.version_sum)
        or (len(seq), int(ver.sum())) != (man.count, man.version_sum)
    ):
        return None
    return SyncResult(None, man, 0, 0, False, "up to date", folder)
