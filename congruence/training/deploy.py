"""Putting a trained head into service, and finding the one in service.

Deploying writes the checkpoint, computes every account's vector and per-post projections
in the head's space ('head:<version>'), builds that space's FAISS index next to the one in
service, and only then records the new version in the store: queries switch over at once
(a running engine on its next refresh), never to a half-built space. The previous head's
space is kept for rollback; older ones are removed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from congruence.core.device import resolve_device
from congruence.core.errors import ModelMismatch
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.indexer.derived import DerivedSpace, update_space
from congruence.indexer.index_sync import layout_for, space_dir, sync_index
from congruence.indexer.publish import (
    Publication,
    publish,
    publishing,
    read_publication,
    record,
    shard_count,
    sync_shards,
)
from congruence.store.postsets import PostSets
from congruence.store.records import Store
from congruence.store.vectors import VectorStore
from congruence.training import lifecycle
from congruence.training.checkpoint import load_head, save_head
from congruence.training.lifecycle import HEAD
from congruence.training.model import CongruenceHead, MetaValue, brand_accounts

logger = logging.getLogger(__name__)
ACTIVE_KEY = HEAD.active_key


def head_space(version: str) -> str:
    return f"head:{version}"


def checkpoint_path(settings: Settings, version: str) -> Path:
    return lifecycle.checkpoint_path(settings, HEAD, version)


def derived_space(model: CongruenceHead) -> DerivedSpace:
    """The head's space: pooled head embeddings (what FAISS holds) and per-post projections."""
    if not model.version:
        raise ValueError("model: save the head before deploying it (it has no version)")

    def encode(sets: PostSets) -> tuple[np.ndarray, np.ndarray]:
        per_post = model.project_posts(sets)  # brands' through the brand tower
        return model.pool_projected(per_post, sets.offsets, brand_accounts(sets)), per_post

    return DerivedSpace(head_space(model.version), head_space(model.version), model.config.d_model, encode)


def encoder_meta(ids: ModelIds) -> dict[str, MetaValue]:
    return {"image_encoder": ids.image_name, "text_encoder": ids.text_name}


def check_encoders(model: CongruenceHead, ids: ModelIds) -> None:
    """Refuse a head trained on other encoders' embeddings than the store's."""
    want = encoder_meta(ids)
    got = {k: model.meta.get(k) for k in want}
    if got != want or (model.config.d_image, model.config.d_text) != (ids.d_image, ids.d_text):
        raise ModelMismatch(
            f"head {model.version or '(unsaved)'} was trained on {got.get('image_encoder')!r} + "
            f"{got.get('text_encoder')!r} embeddings; this store uses {ids.image_name!r} + {ids.text_name!r}"
        )


def load_active(settings: Settings, store: Store) -> CongruenceHead | None:
    """The head in service, on ``settings.device``, or None when none was deployed; see
    ``lifecycle.load_active`` for a missing or unreadable checkpoint."""
    version = lifecycle.active_version(store, HEAD)
    return None if version is None else load_version(settings, version)


def load_version(settings: Settings, version: str) -> CongruenceHead:
    """The head saved as ``version``, on ``settings.device`` (a serving engine loads the one
    its publication names)."""
    device = resolve_device(settings.device)  # a device error is not the checkpoint's fault: raised as it is
    return lifecycle.load_version(settings, HEAD, version, lambda path: load_head(path, map_location=device))


def save_checkpoint(settings: Settings, model: CongruenceHead, meta: dict[str, MetaValue] | None = None) -> Path:
    """Write ``model`` to models/heads/<version>.pt (its version is set by saving)."""
    staging = settings.models_dir / HEAD.folder / "staging.pt"
    version = save_head(model, staging, meta)
    path = checkpoint_path(settings, version)
    staging.replace(path)
    return path


def active_spaces(settings: Settings) -> tuple[DerivedSpace, ...]:
    """The head in service's space, for ingest to keep up to date; () without a head."""
    with Store.open(settings) as store:
        return _active_spaces(settings, store, EncoderSet(settings).model_ids(store))


def in_service(settings: Settings) -> Callable[[Store, ModelIds], tuple[DerivedSpace, ...]]:
    """The head in service's space as a writer should see it: asked under the publishing lock
    (``indexer.publish.Spaces``), so that an ingest beside a deploy publishes the new head's."""
    return lambda store, ids: _active_spaces(settings, store, ids)


def _active_spaces(settings: Settings, store: Store, ids: ModelIds) -> tuple[DerivedSpace, ...]:
    head = load_active(settings, store)
    if head is None:
        return ()
    check_encoders(head, ids)
    return (derived_space(head),)


def publish_current(settings: Settings, verify: bool = False, shards: int | None = None) -> Publication:
    """Publish the store as it is now (the writer's side of serving): the head in service's
    vectors and index and the pooled index brought up to date, each rebuilt from PostgreSQL
    when missing, damaged or stale. Cheap when the publication is current: each index's
    manifest is checked against the store, nothing is loaded. ``verify``: load every index
    and check its checksums too (a server's start-up). ``shards``: in that many shards too
    (``shards build``; by default as many as published before)."""
    with Store.open(settings) as store:
        ids = EncoderSet(settings).model_ids(store)
        pub, _ = publish(store, settings, ids, in_service(settings), verify=verify, shards=shards)
    return pub


@dataclass(frozen=True)
class DeployReport:
    version: str
    path: Path
    space: str
    accounts: int
    index_size: int
    index_kind: str
    previous: str | None


def deploy(settings: Settings, model: CongruenceHead, meta: dict[str, MetaValue] | None = None) -> DeployReport:
    """Save ``model``, build its space and index, then switch the store over to it."""
    with Store.open(settings) as store:
        vstore = VectorStore(store)
        ids = EncoderSet(settings).model_ids(store)
        for key, value in encoder_meta(ids).items():
            model.meta.setdefault(key, value)
        check_encoders(model, ids)
        path = save_checkpoint(settings, model, meta)
        version = model.version
        derived = derived_space(model)
        with publishing(store):  # the head's space and index are published with the head, at once
            n = update_space(vstore, ids, derived)
            layout = layout_for(settings, derived.dim)
            res = sync_index(vstore, settings.index_dir, derived.space, derived.model, layout)
            n_shards = shard_count(read_publication(store)[1])  # a sharded store: the head's space as many
            shards = {derived.space: sync_shards(vstore, settings, derived.space, derived.model, derived.dim, n_shards)}
            with store.conn.transaction():
                previous = lifecycle.activate(store, HEAD, version)
                keep = {version, previous or version}
                gone = [s for s in vstore.spaces() if s.startswith("head:") and s.removeprefix("head:") not in keep]
                record(store, {derived.space: res}, settings.index_dir, drop=gone, shards=shards if n_shards else None)
            _prune(settings, vstore, gone, n_shards)
    logger.info("deployed congruence head %s (%d accounts, index %s)", version, n, res.manifest.kind)
    return DeployReport(version, path, derived.space, n, res.manifest.count, res.manifest.kind, previous)


def _prune(settings: Settings, vstore: VectorStore, spaces: list[str], shards: int) -> None:
    """Remove the spaces and indexes (and shards) of older heads (checkpoints stay on disk); no
    longer published, so no engine loads them."""
    for space in spaces:
        vstore.drop_space(space)
        shutil.rmtree(space_dir(settings.index_dir, space), ignore_errors=True)
        if shards:
            shutil.rmtree(space_dir(settings.index_dir, space, (0, shards)).parent, ignore_errors=True)
        logger.info("removed space %s", space)
