"""The collaboration signal inside ``retrieve`` (docs/collaborations.md): a query with known
partners gets the graph's best candidates beside FAISS', and its list is ordered by the learned
fusion of the content score with the collaborative evidence (``training.fusion_model``).

It applies when the head in service reranks and carries a fusion (``congruence train`` learns
one when the store has collaboration evidence), the snapshot holds the graph, and the query has
known partners. Otherwise, a brand whose category the head's cold-start blend knows
(``training.category_blend``) is ordered by that blend of its content score with the category
prior and propensity (``blend``); else the list is content alone. ``signals_used`` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from congruence.indexer.index import Selection
from congruence.search.filters import Filters
from congruence.search.snapshot import Ranked, Snapshot
from congruence.store.collab_signal import COLLAB_CANDIDATES, Partners, signal_of
from congruence.training.category_blend import CategoryBlend
from congruence.training.fusion_model import Fusion, query_features

SIGNALS = ("all", "content")
_FUSIONS: dict[str, Fusion | None] = {}
_BLENDS: dict[str, CategoryBlend | None] = {}


def check_signals(signals: object) -> str:
    from congruence.core.errors import InvalidInput

    if signals not in SIGNALS:
        raise InvalidInput(f"must be one of {', '.join(SIGNALS)}, got {signals!r}", field="signals")
    return str(signals)


def fusion_of(snap: Snapshot) -> Fusion | None:
    """The fusion the head in service carries, when the snapshot holds the graph."""
    head = snap.head
    if head is None or snap.collabs is None:
        return None
    if head.version not in _FUSIONS:
        _FUSIONS[head.version] = Fusion.from_meta(head.meta)
    return _FUSIONS[head.version]


def blend_of(snap: Snapshot) -> CategoryBlend | None:
    """The cold-start blend the head in service carries, when it reranks."""
    head = snap.head
    if head is None or not snap.reranks:
        return None
    if head.version not in _BLENDS:
        _BLENDS[head.version] = CategoryBlend.from_meta(head.meta)
    return _BLENDS[head.version]


def blends(snap: Snapshot, partners: Partners | None) -> bool:
    """Whether a query with ``partners`` (its brand's category) that the fusion does not serve is
    ordered by the cold-start blend."""
    blend = blend_of(snap)
    return partners is not None and blend is not None and blend.knows(partners.category)


@dataclass(frozen=True)
class Signals:
    """What served one answer: ``collaboration`` (with how many known partners) or not, and why
    not; ``category``: the brand category whose prior the cold-start blend added (for ``ranking``)."""

    collaboration: bool
    partners: int
    why_not: str = ""
    category: str = ""

    def describe(self) -> str:
        if self.collaboration:
            return f"content + collaboration ({self.partners} known partners, learned fusion)"
        if self.category:
            why = f"; no collaboration: {self.why_not}" if self.why_not else ""
            return f"content + category prior ({self.category} brands' partners, learned blend{why})"
        return f"content only ({self.why_not})" if self.why_not else "content only"


def signals_used(snap: Snapshot, signals: str, partners: Partners | None, new_brand: bool = False) -> Signals:
    """Whether a query with ``partners`` is ranked with the collaboration signal, and if not, why
    (``new_brand``: an uploaded brand, which has no partners)."""
    if signals == "content":
        return Signals(False, 0, "signals=content")
    if new_brand:
        return Signals(False, 0, "a new brand has no known partners")
    got = _collaboration(snap, partners)
    if not got.collaboration and blends(snap, partners):
        assert partners is not None
        return Signals(False, got.partners, got.why_not, partners.category)
    return got


def _collaboration(snap: Snapshot, partners: Partners | None) -> Signals:
    n = len(partners) if partners is not None else 0
    if snap.collabs is None or not len(snap.collabs.handles):
        return Signals(False, n, "no collaboration graph: no post names a handle")
    if fusion_of(snap) is None:
        if snap.head is None:
            why = "no head in service"
        elif not snap.collabs.edge_mask(("tag", "sponsor")).any():
            why = "no post tags a handle or names a sponsor: congruence train learns the fusion from those"
        else:
            why = f"head {snap.head.version} carries no learned fusion: too few brands with 6+ partners to learn one"
        return Signals(False, n, why)
    if not n:
        return Signals(False, 0, "no known partners")
    return Signals(True, n)


def allowed_rows(
    snap: Snapshot, selection: Selection | None, filters: Filters | None
) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving, for some table rows, whether a query may return them: in the index
    and its filter's selection; on a sharded ingress (whose shards select their own, and whose
    index is empty), the filter applied to the ingress's table (an account the shards do not
    hold is dropped after their rerank: ``fuse``). Reads only the rows asked about."""
    if snap.shards is not None:
        f = filters or Filters()
        if not f.active:
            return lambda rows: np.ones(len(rows), bool)
        mask = f.rows(snap.table, snap.safety, snap.metrics, snap.collabs)
        return lambda rows: mask[rows]
    sel = selection if selection is not None else snap.live

    def allowed(rows: np.ndarray) -> np.ndarray:
        pos = snap.index.positions(snap.table.seq[rows])
        ok = pos >= 0
        if sel is not None:
            ok[ok] = sel.mask[pos[ok]]
        return ok

    return allowed


def join(
    snap: Snapshot,
    lists: list[Ranked],
    queries: dict[int, Partners],
    allowed: Callable[[np.ndarray], np.ndarray],
    skips: list[np.ndarray],
) -> tuple[list[Ranked], dict[int, np.ndarray]]:
    """``lists`` with each query's best ``COLLAB_CANDIDATES`` by the graph appended (those it
    may return, not excluded, not there yet, and not its known partners, as in the lists the
    fusion learned on; score -inf until the rerank scores them), and each query's seqs joined."""
    assert snap.collabs is not None
    signal = signal_of(snap.collabs)
    out, joined = list(lists), {}
    for i, p in queries.items():
        seqs, sc = lists[i]
        skip = skips[i][(skips[i] >= 0) & (skips[i] < len(snap.row_of_seq))]
        r = snap.row_of_seq[skip]
        taken = np.concatenate([snap.rows(seqs[seqs >= 0]), r[r >= 0], p.rows])

        def ok(rows: np.ndarray, taken: np.ndarray = taken) -> np.ndarray:
            return allowed(rows) & ~np.isin(rows, taken)

        extra = snap.table.seq[signal.best(signal.weights(p), COLLAB_CANDIDATES, ok)].astype(np.int64)
        out[i] = (np.concatenate([seqs, extra]), np.concatenate([sc, np.full(len(extra), -np.inf, np.float32)]))
        joined[i] = extra
    return out, joined


def fuse(
    snap: Snapshot,
    fusion: Fusion,
    lists: list[Ranked],
    queries: dict[int, Partners],
    joined: dict[int, np.ndarray] | None = None,
) -> list[Ranked]:
    """Each query's list ordered by the fusion's score of its candidates (the content score
    being the list's: the head's, with feedback's terms when marked). A candidate the graph
    joined (``joined``) that got no content score is dropped: no vector (not embedded yet, or
    not held by any shard), so not an account the search may return."""
    assert snap.collabs is not None
    signal = signal_of(snap.collabs)
    out = list(lists)
    for i, p in queries.items():
        seqs, sc = lists[i]
        if joined is not None and i in joined and len(joined[i]):
            keep = np.isfinite(sc) | ~np.isin(seqs, joined[i])
            seqs, sc = seqs[keep], sc[keep]
        if not len(seqs):
            continue
        x = query_features(signal, snap.table, p, snap.rows(seqs), sc)
        fused = fusion.score(x)
        order = np.lexsort((np.arange(len(seqs)), -fused))
        out[i] = (seqs[order], fused[order].astype(np.float32))
    return out


def order(
    snap: Snapshot,
    lists: list[Ranked],
    told: Sequence[Partners | None],
    collab: dict[int, Partners],
    joined: dict[int, np.ndarray],
    reranked: list[bool],
) -> list[Ranked]:
    """The lists in their final order: the queries with known partners (``collab``) by the learned
    fusion; the other reranked queries whose brand category the cold-start blend knows, by the
    blend; the rest as they are (content)."""
    fusion = fusion_of(snap)
    if collab and fusion is not None:
        lists = fuse(snap, fusion, lists, collab, joined)
    cold = {i: p for i, p in enumerate(told) if p is not None and i not in collab and reranked[i] and blends(snap, p)}
    return blend(snap, lists, cold) if cold else lists


def blend(snap: Snapshot, lists: list[Ranked], queries: dict[int, Partners]) -> list[Ranked]:
    """Each query's list ordered by the cold-start blend of its content scores (the head's, with
    feedback's terms when marked) with its brand category's prior and each candidate's
    propensity; a candidate without a content score stays last, in its order."""
    b = blend_of(snap)
    assert b is not None
    categories = snap.table.categories
    out = list(lists)
    for i, p in queries.items():
        seqs, sc = lists[i]
        if not len(seqs):
            continue
        rows = snap.rows(seqs)
        prop = snap.collabs.tag_counts(rows, p.own) if snap.collabs is not None else np.zeros(len(rows))
        score = b.score(sc, p.category, [categories[int(r)] for r in rows], prop)
        order = np.lexsort((np.arange(len(seqs)), -score))
        out[i] = (seqs[order], score[order].astype(np.float32))
    return out
