"""Removing accounts: rows first (system of record), then the indexes follow, published."""

from __future__ import annotations

from collections.abc import Sequence

from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.indexer.account_metrics.recompute import recompute as recompute_metrics
from congruence.indexer.publish import Spaces, publish
from congruence.store.records import Store


def delete_accounts(settings: Settings, ids: Sequence[str], spaces: Spaces = ()) -> list[str]:
    """Delete the accounts ``ids`` (posts, matches and vectors with them), bring the metrics
    and the indexes (the pooled one and ``spaces``'s, the head in service's) up to date and
    publish them; returns the ids that existed."""
    with Store.open(settings) as store:
        gone = store.delete_accounts(ids)
        recompute_metrics(store)  # the peers the authenticity signals compare with have changed
        publish(store, settings, EncoderSet(settings).model_ids(store), spaces, changed=bool(gone))
    return gone
