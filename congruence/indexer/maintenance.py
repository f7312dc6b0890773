"""Removing accounts: rows first (system of record), then the index follows."""

from __future__ import annotations

from collections.abc import Sequence

from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.indexer.account_metrics.recompute import recompute as recompute_metrics
from congruence.indexer.index_sync import layout_for, sync_index
from congruence.store.records import Store
from congruence.store.vectors import VectorStore


def delete_accounts(settings: Settings, ids: Sequence[str]) -> list[str]:
    """Delete the accounts ``ids`` (posts, matches and vectors with them) and bring the
    metrics and the index up to date; returns the ids that existed."""
    with Store.open(settings) as store:
        gone = store.delete_accounts(ids)
        recompute_metrics(store)  # the peers the authenticity signals compare with have changed
        vstore = VectorStore(store)
        mids = EncoderSet(settings).model_ids(store)
        sync_index(vstore, settings.index_dir, mids.pooled_space, mids.pooled_model, layout_for(settings))
        store.bump_generation()  # serving processes reload before their next answer
    return gone
