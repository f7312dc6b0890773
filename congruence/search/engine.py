"""The query engine: brand → influencers, influencer → similar influencers.

It only reads. Writers (ingest, deploy, delete) publish a generation (``indexer.publish``):
the index of each space, the derived vectors and a record naming them. The engine loads
the published index of the space in service and the head published with it, swaps in a new
snapshot when the store's generation moves, and reads PostgreSQL through a pool of
connections, so concurrent queries never queue behind one connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from congruence.core.errors import InvalidInput, ModelMismatch
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.indexer.index import Selection
from congruence.indexer.publish import NotPublished
from congruence.search.collab_rank import check_signals
from congruence.search.engine_reads import EngineReads
from congruence.search.feedback import CONTENT_SPACE, Feedback, Marked, apply, content_vectors
from congruence.search.feedback_terms import seeds_query
from congruence.search.filters import Filters
from congruence.search.hits import Hit
from congruence.search.loader import PUBLISH_HINT, Published, SnapshotLoader
from congruence.search.new_brands import BrandQuery, NewBrands
from congruence.search.retrieve import MAX_K, retrieve
from congruence.search.safety import check_screened
from congruence.search.snapshot import Snapshot, VectorReader
from congruence.store.collab_signal import Partners
from congruence.store.pool import StorePool
from congruence.store.records import Store
from congruence.store.vectors import Shard, VectorStore

__all__ = ["MAX_K", "BrandQuery", "Engine", "Entry", "Feedback", "Snapshot"]
logger = logging.getLogger(__name__)
MAX_SEEDS = 100  # influencers in one look-alike query


@dataclass(frozen=True)
class Entry:
    """An account in the snapshot's space: its seq, (d,) vector, (P, d) per-post vectors (None
    in the pooled space)."""

    seq: int
    vector: np.ndarray
    posts: np.ndarray | None


class Engine(EngineReads, NewBrands):
    """pool: the connections it reads through (its own by default, closed with it). shard:
    (i, n) serves shard i of the n published (``shards build``): its index alone."""

    def __init__(self, settings: Settings, pool: StorePool | None = None, shard: Shard | None = None):
        self.settings = settings
        self.shard = shard
        self._own_pool = pool is None
        self.pool = pool or StorePool.open(settings)
        try:
            self.encoders = EncoderSet(settings)
            with self.reading() as store:
                ids = self.encoders.stored_model_ids(store)
            if ids is None:
                raise NotPublished(f"nothing is published in this store yet: {PUBLISH_HINT}")
            self.ids: ModelIds = ids
            self.reader = VectorReader(self.pool.reading)
            self._screened_at = -1  # the generation whose posts were all seen by the safety screen
            self.loader = self._loader()
            self.published = Published(self.loader)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reading(self) -> contextlib.AbstractContextManager[Store]:
        """A ``Store`` on a pooled connection, for one read (``with engine.reading() as store``)."""
        return self.pool.reading()

    def _loader(self) -> SnapshotLoader:
        """What reads a published generation into a snapshot (a sharded ingress's differs)."""
        return SnapshotLoader(self.settings, self.pool, self.ids, self.shard)

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot loaded last (``current`` checks the store first)."""
        return self.published.snapshot

    @property
    def load_error(self) -> str | None:
        """Why the newest generation could not be loaded (the one before answers meanwhile)."""
        return self.published.load_error

    def refresh(self) -> None:
        """Load the published generation now (it would be before the next answer anyway)."""
        self.published.refresh()

    def current(self) -> Snapshot:
        """The snapshot to answer with: ``Published.current``."""
        return self.published.current()

    # -- queries ----------------------------------------------------------------------
    def match_brand(
        self,
        brand_id: str,
        k: int = 20,
        filters: Filters = Filters(),
        posts: int = 0,
        feedback: Feedback = Feedback(),
        snap: Snapshot | None = None,
        signals: str = "all",
    ) -> list[Hit]:
        """``snap``: answer from this snapshot (taken with ``current``, so that a caller can name
        the head that answered: ``ranking(snap)``); the current one by default. signals: 'all'
        adds the brand's known partners' collaborative evidence (``collab_rank``), 'content' not."""
        snap = snap or self.current()
        entry = self.entry(snap, brand_id, "brand")
        known = self.brand_partners(snap, brand_id) if check_signals(signals) == "all" else None
        return self._hits(
            snap, entry.vector, k, filters, posts, brand_posts=entry.posts, feedback=feedback, partners=known
        )

    def match_query(
        self,
        query: BrandQuery,
        k: int = 20,
        filters: Filters = Filters(),
        posts: int = 0,
        feedback: Feedback = Feedback(),
        snap: Snapshot | None = None,
        signals: str = "all",
    ) -> list[Hit]:
        """A brand not in the corpus: no known partners, but those it likes through feedback."""
        snap = snap or self.current()
        if query.space != snap.space:
            raise ModelMismatch(
                f"this brand was described in {query.space!r}, but {snap.space!r} is in service now: describe it again"
            )
        liked = (
            Partners(np.zeros(0, np.int64)) if check_signals(signals) == "all" and snap.collabs is not None else None
        )
        return self._hits(
            snap, query.vector, k, filters, posts, brand_posts=query.posts, feedback=feedback, partners=liked
        )

    def similar(
        self,
        influencers: str | Sequence[str],
        k: int = 20,
        filters: Filters = Filters(),
        posts: int = 0,
        feedback: Feedback = Feedback(),
        snap: Snapshot | None = None,
        signals: str = "all",
    ) -> list[Hit]:
        """Look-alikes of one influencer, or of a set (ranked by the mean cosine to the seeds,
        the seeds excluded), in the influencer tower when a head is in service. ``snap``,
        ``signals``: as ``match_brand``'s (the seeds are the known partners)."""
        seeds = [influencers] if isinstance(influencers, str) else list(influencers)
        if any(not isinstance(a, str) for a in seeds):
            raise InvalidInput("similar: expected influencer ids")
        seeds = list(dict.fromkeys(a.strip() for a in seeds if a.strip()))
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise InvalidInput(f"similar: give 1 to {MAX_SEEDS} influencers, got {len(seeds)}")
        for name, marked in (("liked", feedback.like), ("disliked", feedback.dislike)):
            both = [a for a in seeds if a in marked]
            if both:  # a seed is what the user asked for: liking it adds nothing, disliking it cancels the query
                raise InvalidInput(f"{both[0]!r} is both a seed of similar and {name}")
        snap = snap or self.current()
        entries = [self.entry(snap, a, "influencer") for a in seeds]
        vecs = np.stack([e.vector for e in entries])
        q = entries[0].vector if len(entries) == 1 else seeds_query(vecs)
        return self._hits(
            snap,
            q,
            k,
            filters,
            posts,
            exclude=[e.seq for e in entries],
            feedback=feedback,
            examples=vecs,
            example_seqs=[e.seq for e in entries],
            partners=Partners(self._rows_of(snap, seeds))
            if check_signals(signals) == "all" and snap.collabs is not None
            else None,
        )

    def retrieve(
        self,
        snap: Snapshot,
        xq: np.ndarray,
        k: int,
        filters: Filters = Filters(),
        brand_posts: Sequence[np.ndarray | None] | None = None,
        exclude: Sequence[np.ndarray] | None = None,
        feedback: Sequence[Marked | None] | None = None,
        selection: Selection | None = None,
        partners: Sequence[Partners | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``search.retrieve.retrieve`` over ``snap`` with this engine's reader and settings.
        selection: the accounts ranked, in place of the filters' (a benchmark's candidates)."""
        filters = self.with_lists(filters)
        self.check_screened(snap, filters)
        self.check_filters(snap, filters)
        return retrieve(
            snap,
            xq,
            k,
            exact=self.reader.exact,
            candidates=self.settings.candidates,
            selection=snap.selection(filters) if selection is None else selection,
            brand_posts=brand_posts,
            exclude=exclude,
            feedback=feedback,
            filters=filters,
            partners=partners,
        )

    def with_lists(self, filters: Filters) -> Filters:
        """``filters`` with the campaign list it excludes read now (``search.list_filters``)."""
        if filters.exclude_list is None or filters.listed is not None:
            return filters
        from congruence.search.list_filters import resolve

        with self.reading() as store:
            return resolve(store, filters)

    def check_filters(self, snap: Snapshot, filters: Filters) -> None:
        """Refuse a filter that cannot pass anyone for a reason to say (here: when its
        selection is made; a sharded ingress checks before the shards select)."""

    def check_screened(self, snap: Snapshot, filters: Filters) -> None:
        """For a brand-safety filter: refuse while posts wait for the screen (checked once
        per snapshot generation)."""
        if filters.screened and self._screened_at != snap.generation and snap.safety is not None:
            with self.reading() as store:
                check_screened(store, snap.safety.version)
            self._screened_at = snap.generation

    def entry(self, snap: Snapshot, account_id: str, kind: str) -> Entry:
        """The account's vector (and per-post vectors) in the snapshot's space, or why not."""
        with self.reading() as store:
            entry = VectorStore(store).account_entry(snap.space, account_id)
        Store.check_kind(account_id, entry.kind if entry else None, kind)
        if entry is None or entry.vector is None:
            raise InvalidInput(f"{kind} {account_id!r} has no embedded posts to match on")
        return Entry(entry.seq, entry.vector, entry.posts)

    def brand_ids(self) -> list[str]:
        """Every brand's id, in store order."""
        with self.reading() as store:
            return list(store.account_table("brand").ids)

    def account_kinds(self, ids: Sequence[str]) -> dict[str, str]:
        """Account id -> 'brand' or 'influencer', for the ids that exist."""
        with self.reading() as store:
            return store.account_kinds(list(ids))

    def _hits(
        self,
        snap: Snapshot,
        q: np.ndarray,
        k: int,
        filters: Filters,
        posts: int,
        brand_posts: np.ndarray | None = None,
        exclude: Sequence[int] = (),
        feedback: Feedback = Feedback(),
        examples: np.ndarray | None = None,
        example_seqs: Sequence[int] = (),
        partners: Partners | None = None,
    ) -> list[Hit]:
        """One query through ``rank``, as hits (with each hit's ``posts`` best posts)."""
        D, I = self.rank(  # noqa: E741
            snap, q, k, filters, brand_posts, exclude, feedback, examples, example_seqs, partners=partners
        )
        seqs = I[0][I[0] >= 0]
        rows = snap.rows(seqs)
        t = snap.table
        hits = [
            Hit(
                t.ids[r],
                t.handles[r],
                t.categories[r],
                int(t.followers[r]) if t.followers[r] >= 0 else None,
                float(score),
                rank,
            )
            for rank, (r, score) in enumerate(zip(rows, D[0], strict=False), start=1)
        ]
        return self._with_posts(snap, hits, seqs.tolist(), q, posts) if posts else hits

    def rank(
        self,
        snap: Snapshot,
        q: np.ndarray,
        k: int,
        filters: Filters = Filters(),
        brand_posts: np.ndarray | None = None,
        exclude: Sequence[int] = (),
        feedback: Feedback = Feedback(),
        examples: np.ndarray | None = None,
        example_seqs: Sequence[int] = (),
        selection: Selection | None = None,
        partners: Partners | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) of one (d,) query: ``feedback`` resolved and applied (``examples``: vectors that
        count as liked, of the accounts ``example_seqs``; ``feedback.apply``), then ``retrieve``.
        Every match and ``similar`` ranks here, and so does ``bench/feedback.py`` (``selection``:
        the accounts ranked, in place of the filters')."""
        marked = self.marked(snap, feedback)
        examples_content = None
        if marked is not None and examples is not None and snap.space != CONTENT_SPACE:
            examples_content = content_vectors(self.reader.exact, example_seqs)
        skip, applied = apply(q, marked, exclude, examples, examples_content)
        partners = self._with_liked(snap, partners, feedback)
        return self.retrieve(snap, q[None, :], k, filters, [brand_posts], [skip], [applied], selection, [partners])

    def ranking(self, snap: Snapshot | None = None) -> str:
        """How the scores of ``snap`` (the snapshot in service by default) are computed, in words."""
        head = (snap or self.snapshot).head
        if head is None:
            return "untrained: cosine similarity of pooled embeddings (no congruence head trained yet)"
        return (
            f"congruence head {head.version}: FAISS top-{self.settings.candidates} over head embeddings, "
            "reranked by the head"
        )
