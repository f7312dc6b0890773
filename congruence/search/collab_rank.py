"""The collaboration signal inside ``retrieve`` (docs/collaborations.md): a query with known
partners gets the graph's best candidates beside FAISS', and its list is ordered by the learned
fusion of the content score with the collaborative evidence (``training.fusion_model``).

It applies when the head in service reranks and carries a fusion (``congruence train`` learns
one when the store has collaboration evidence), the snapshot holds the graph, and the query has
known partners. Otherwise the list is content alone, and ``signals_used`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from congruence.indexer.index import Selection
from congruence.search.filters import Filters
from congruence.search.snapshot import Ranked, Snapshot
from congruence.store.collab_signal import COLLAB_CANDIDATES, Partners, signal_of
from congruence.training.fusion_model import Fusion, query_features

SIGNALS = ("all", "content")
_FUSIONS: dict[str, Fusion | None] = {}


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


@dataclass(frozen=True)
class Signals:
    """What served one answer: ``collaboration`` (with how many known partners) or content only,
    and why not (for ``ranking``)."""

    collaboration: bool
    partners: int
    why_not: str = ""

    def describe(self) -> str:
        if self.collaboration:
            return f"content + collaboration ({self.partners} known partners, learned fusion)"
        return f"content only ({self.why_not})" if self.why_not else "content only"


def signals_used(snap: Snapshot, signals: str, partners: Partners | None, new_brand: bool = False) -> Signals:
    """Whether a query with ``partners`` is ranked with the collaboration signal, and if not, why
    (``new_brand``: an uploaded brand, which has no partners)."""
    if signals == "content":
        return Signals(False, 0, "signals=content")
    if new_brand:
        return Signals(False, 0, "a new brand has no known partners")
    n = len(partners) if partners is not None else 0
    if snap.collabs is None or not len(snap.collabs.handles):
        return Signals(False, n, "no collaboration graph: no post names a handle")
    if fusion_of(snap) is None:
        why = "no head in service" if snap.head is None else f"head {snap.head.version} carries no learned fusion"
        return Signals(False, n, why)
    if not n:
        return Signals(False, 0, "no known partners")
    return Signals(True, n)


def allowed_rows(snap: Snapshot, selection: Selection | None, filters: Filters | None) -> np.ndarray:
    """(rows,) bool: the table rows a query may return (its filter's selection, or, on a sharded
    ingress whose shards select their own, the filter applied to the ingress's table)."""
    n = len(snap.table.ids)
    if snap.shards is not None:
        f = filters or Filters()
        return f.rows(snap.table, snap.safety, snap.metrics, snap.collabs) if f.active else np.ones(n, bool)
    sel = selection if selection is not None else snap.live
    pos = snap.index.positions(snap.table.seq)
    ok = pos >= 0
    if sel is not None:
        ok[ok] = sel.mask[pos[ok]]
    return ok


def join(
    snap: Snapshot, lists: list[Ranked], queries: dict[int, Partners], allowed: np.ndarray, skips: list[np.ndarray]
) -> list[Ranked]:
    """``lists`` with each query's best ``COLLAB_CANDIDATES`` by the graph appended (those it
    may return, not excluded, not there yet; score -inf until the rerank scores them)."""
    assert snap.collabs is not None
    signal = signal_of(snap.collabs)
    out = list(lists)
    for i, p in queries.items():
        seqs, sc = lists[i]
        ok = allowed.copy()
        ok[snap.rows(seqs[seqs >= 0])] = False
        skip = skips[i][(skips[i] >= 0) & (skips[i] < len(snap.row_of_seq))]
        r = snap.row_of_seq[skip]
        ok[r[r >= 0]] = False
        extra = snap.table.seq[signal.best(signal.weights(p), COLLAB_CANDIDATES, ok)].astype(np.int64)
        out[i] = (np.concatenate([seqs, extra]), np.concatenate([sc, np.full(len(extra), -np.inf, np.float32)]))
    return out


def fuse(snap: Snapshot, fusion: Fusion, lists: list[Ranked], queries: dict[int, Partners]) -> list[Ranked]:
    """Each query's list ordered by the fusion's score of its candidates (the content score
    being the list's: the head's, with feedback's terms when marked)."""
    assert snap.collabs is not None
    signal = signal_of(snap.collabs)
    out = list(lists)
    for i, p in queries.items():
        seqs, sc = lists[i]
        if not len(seqs):
            continue
        x = query_features(signal, snap.table, p, snap.rows(seqs), sc)
        fused = fusion.score(x)
        order = np.lexsort((np.arange(len(seqs)), -fused))
        out[i] = (seqs[order], fused[order].astype(np.float32))
    return out
