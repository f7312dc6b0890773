"""What the engine reads beside the ranking itself: a query's known partners and the signals that
serve it (``collab_rank``), feedback resolved in a snapshot's space, and the per-post vectors
and best posts a hit shows. A base of ``search.engine.Engine``, which gives it ``reading``,
``reader`` and ``ids``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from congruence.encoders.encoder_set import ModelIds
from congruence.indexer.pool import pool_features
from congruence.search.collab_rank import Signals, check_signals, signals_used
from congruence.search.feedback import Feedback, Marked, resolve
from congruence.search.hits import Hit, PostRef
from congruence.search.snapshot import Snapshot, VectorReader
from congruence.store.collab_signal import Partners, brand_identities, brand_partners
from congruence.store.records import Store
from congruence.store.vectors import VectorStore


class EngineReads:
    ids: ModelIds
    reader: VectorReader

    def reading(self) -> contextlib.AbstractContextManager[Store]:
        raise NotImplementedError  # the engine's pooled connections

    def signals(
        self,
        snap: Snapshot,
        signals: str = "all",
        brand_id: str | None = None,
        seeds: Sequence[str] = (),
        feedback: Feedback = Feedback(),
    ) -> Signals:
        """What ranks a match of ``brand_id``, a ``similar`` of ``seeds``, or (neither) a new
        brand, with ``feedback`` (its liked count as known partners): content alone or with the
        collaboration signal, and why (for ``ranking``); as ``rank`` decides it."""
        partners = None
        if check_signals(signals) == "all" and snap.collabs is not None:
            if brand_id is not None:
                partners = self.brand_partners(snap, brand_id)
            else:
                partners = Partners(self._rows_of(snap, seeds))
            partners = self._with_liked(snap, partners, feedback)
        new = brand_id is None and not seeds and not feedback.like
        return signals_used(snap, signals, partners, new_brand=new)

    def _rows_of(self, snap: Snapshot, ids: Sequence[str]) -> np.ndarray:
        """The table rows of the influencers ``ids`` in ``snap`` (those it holds)."""
        if not ids:
            return np.zeros(0, np.int64)
        with self.reading() as store:
            got = np.asarray(store.seqs_of(list(ids)), np.int64)
        rows = snap.row_of_seq[got[(got >= 0) & (got < len(snap.row_of_seq))]].astype(np.int64)
        return rows[rows >= 0]

    def _with_liked(self, snap: Snapshot, partners: Partners | None, feedback: Feedback) -> Partners | None:
        """``partners`` with the influencers ``feedback`` likes (a liked influencer is a known
        partner too)."""
        if partners is None or not feedback.like:
            return partners
        liked = self._rows_of(snap, list(feedback.like))
        return Partners(np.concatenate([partners.rows, liked]), partners.own, partners.category)

    def brand_partners(self, snap: Snapshot, brand_id: str) -> Partners | None:
        """The brand's known partners in ``snap``'s table: its matches and the creators who tagged
        it or were sponsored by it (None: the snapshot holds no graph)."""
        if snap.collabs is None:
            return None
        with self.reading() as store:
            own, category = brand_identities(store, [brand_id]).get(brand_id, ((), ""))
        return brand_partners(snap.collabs, own, category)

    def _with_posts(self, snap: Snapshot, hits: list[Hit], seqs: list[int], q: np.ndarray, n: int) -> list[Hit]:
        """Attach each influencer's n posts closest to the query, in the snapshot's space."""
        ids = [h.influencer_id for h in hits]
        per_post = self.per_post_vectors(snap, ids, seqs)
        with self.reading() as store:
            post_ids = store.post_ids_by_account(ids)
        out = []
        for h in hits:
            vecs, pids = per_post.get(h.influencer_id), post_ids.get(h.influencer_id, [])
            if vecs is None or len(vecs) != len(pids):
                out.append(h)
                continue
            sims = vecs @ q
            order = np.argsort(-sims, kind="stable")[:n]
            refs = tuple(PostRef(pids[j], float(sims[j])) for j in order)
            out.append(Hit(**{**h.__dict__, "top_posts": refs}))
        return out

    def marked(self, snap: Snapshot, feedback: Feedback) -> Marked | None:
        """``feedback`` resolved in the snapshot's space."""

        def lookup(ids: list[str]) -> tuple[dict[str, str], list[int]]:
            with self.reading() as store:
                return store.account_kinds(ids), store.seqs_of(ids)

        return resolve(snap.space, snap.index.dim, feedback, lookup, self.reader.exact)

    def per_post_vectors(
        self, snap: Snapshot, account_ids: list[str], seqs: Sequence[int] | None = None
    ) -> dict[str, np.ndarray]:
        """Account id -> (n_posts, d) per-post vectors in the snapshot's space (seqs: the
        accounts' seqs, aligned, when the caller knows them)."""
        if snap.head is not None and snap.shards is not None:
            if seqs is None:
                with self.reading() as store:
                    seqs = store.seqs_of(account_ids)
            held = snap.shards.post_vectors(np.asarray(seqs, np.int64))
            return {a: held[int(s)] for a, s in zip(account_ids, seqs, strict=True) if int(s) in held}
        if snap.head is not None and snap.index.posts is not None:
            if seqs is None:
                with self.reading() as store:
                    seqs = store.seqs_of(account_ids)
            pos = snap.index.positions(np.asarray(seqs, np.int64))
            found = {a: snap.index.posts.of(int(p)) for a, p in zip(account_ids, pos, strict=True) if p >= 0}
            return {a: v for a, v in found.items() if v is not None}
        ids = self.ids
        with self.reading() as store:
            sets = VectorStore(store).post_sets(ids.image, ids.text, ids.d_image, ids.d_text, account_ids=account_ids)
        return {
            a: np.stack([pool_features(f[None, :], ids.d_image) for f in sets.posts_of(i)])
            for i, a in enumerate(sets.account_ids)
        }
