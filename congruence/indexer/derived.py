"""Derived embedding spaces: per-account vectors computed from the stored post features.

A trained congruence head defines one ('head:<version>'). The indexer does not know how
the vectors are computed (``training`` provides the function); it knows which accounts are
out of date: those whose pooled vector changed since their derived vector was made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from congruence.encoders.encoder_set import ModelIds
from congruence.store.postsets import PostSets
from congruence.store.vectors import VectorStore

logger = logging.getLogger(__name__)
CHUNK = 2000

# PostSets -> ((n_accounts, dim) L2-normalised account vectors, (n_posts, dim) per-post vectors)
Encode = Callable[[PostSets], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DerivedSpace:
    """space: the account_vectors space name; model: the name the index manifest records."""

    space: str
    model: str
    dim: int
    encode: Encode


def update_space(
    vstore: VectorStore, ids: ModelIds, derived: DerivedSpace, progress: Callable[[int], None] | None = None
) -> int:
    """Recompute the derived vectors of every account whose pooled vector changed; returns how many."""
    vstore.drop_orphans(derived.space, ids.pooled_space)
    stale = vstore.stale_derived(derived.space, ids.pooled_space)
    for i in range(0, len(stale), CHUNK):
        chunk = stale[i : i + CHUNK]
        sets = vstore.post_sets(ids.image, ids.text, ids.d_image, ids.d_text, account_ids=[a for a, _ in chunk])
        if len(sets) == 0:
            continue
        pooled, per_post = derived.encode(sets)
        source = dict(chunk)
        vstore.put_derived_vectors(derived.space, sets, pooled, per_post, [source[a] for a in sets.account_ids])
        if progress is not None:
            progress(len(sets))
    if stale:
        logger.info("space %s: recomputed %d accounts", derived.space, len(stale))
    return len(stale)
