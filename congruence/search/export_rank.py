"""Batched ranking for exports: many brands through ``retrieve`` at once.

Gives, brand for brand, what ``Engine.match_brand`` gives, because it is the same code:
``search.retrieve.retrieve`` over one snapshot, with the brands' stored vectors as the
queries. What changes is the plumbing: one read of the batch's query vectors, one FAISS
search per batch, one exact re-score read per batch (compressed codes), and the head
scores several brands' candidate lists per forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.search.collab_rank import check_signals
from congruence.search.filters import Filters
from congruence.search.retrieve import check_k, retrieve
from congruence.search.snapshot import Snapshot, VectorReader
from congruence.store.collab_signal import Partners, brand_identities, brand_partners

NO_VECTORS = "no embedded posts to match on"


@dataclass(frozen=True)
class RankedRows:
    """One batch's results, columnar, brand by brand in input order, best first.

    brand_ids, rows (int64 positions in the snapshot's influencer table), scores
    (float64; -inf for a candidate the head could not score, as in ``match_brand``) and
    ranks (int32, from 1) are aligned. skipped: (brand id, reason) of brands with no rows.
    """

    brand_ids: list[str]
    rows: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    skipped: tuple[tuple[str, str], ...]


class BatchRanker:
    """Ranks batches of brands against one snapshot (read only) and one filter.

    reader: where the brands' vectors (and the exact vectors of compressed codes) are read;
    candidates: the rerank's breadth (``Settings.candidates``), as the engine uses it.
    """

    def __init__(
        self, snap: Snapshot, reader: VectorReader, k: int, filters: Filters, candidates: int, signals: str = "all"
    ):
        self.snap, self.reader, self.k, self.candidates = snap, reader, check_k(k), candidates
        self.filters, self.selection = filters, snap.selection(filters)
        self.signals = check_signals(signals)

    def partners(self, brands: Sequence[str]) -> list[Partners | None] | None:
        """Each brand's known partners, as ``Engine.match_brand`` finds them (None: content only)."""
        ci = self.snap.collabs
        if self.signals != "all" or ci is None:
            return None
        with self.reader.reading() as store:
            known = brand_identities(store, brands)
        return [brand_partners(ci, *known.get(b, ((), ""))) for b in brands]

    def rank(self, brands: Sequence[str]) -> RankedRows:
        """Top-k of each brand (ids of brands in the store, no duplicates)."""
        snap = self.snap
        q = self.reader.queries(snap.space, brands, with_posts=snap.reranks)
        skipped = tuple((b, NO_VECTORS) for b in q.missing)
        if not q.ids:
            return RankedRows([], np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int32), skipped)
        D, I = retrieve(
            snap,
            q.xq,
            self.k,
            exact=self.reader.exact,
            candidates=self.candidates,  # noqa: E741
            selection=self.selection,
            brand_posts=q.posts,
            filters=self.filters,
            partners=self.partners(q.ids),
        )
        lengths = (I >= 0).sum(axis=1)
        ok = I >= 0
        return RankedRows(
            [b for b, n in zip(q.ids, lengths, strict=True) for _ in range(int(n))],
            snap.rows(I[ok]),
            D[ok].astype(np.float64),
            np.concatenate([np.arange(1, n + 1, dtype=np.int32) for n in lengths]),
            skipped,
        )
