"""The one retrieval path. Every caller ranks through ``retrieve``: ``match`` (a brand in the
corpus), a new brand from uploads, ``similar``, export (local and on Ray) and so the API.

Per query, in order:
1. FAISS top-N over the snapshot's index, a filter's selection applied inside the search;
2. with a head in service and the query's per-post vectors: the head reranks
   N = max(k, candidates) candidates (``rerank``);
3. with relevance feedback (``feedback.Marked``, applied): the candidates of the query, of its
   Rocchio-moved query and around each liked influencer, scored by what the query alone
   gives them (the head's rerank, or the exact cosine) plus the nearest-example terms
   (with a head, over its tower's vectors and the pooled space's, both read from PostgreSQL);
4. otherwise, on compressed (sq8) codes: 4N + 20 candidates re-scored exactly with their
   float32 vectors from PostgreSQL, as FAISS' IndexRefine does but with the refinement
   vectors left in the database (8-bit codes round inner products by ~1e-3, enough to swap
   near-ties in a top 10; at 1M, d=256, 2N + 10 held 0.949 of the true top 10 and
   4N + 20 held 0.953, for ~4 ms);
5. the top k, as FAISS answers: ``(D, I)``.

How wide each query searches depends only on the snapshot, k, and that query (whether it
reranks, how many accounts it excludes), never on the other queries of a batch: HNSW answers
each query on its own, so an export's rows are ``match``'s, brand for brand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.core.vectors import as_matrix
from congruence.indexer.index import Selection
from congruence.search import collab_rank
from congruence.search.collab_rank import fusion_of
from congruence.search.feedback import CONTENT_SPACE, Marked
from congruence.search.filters import Filters
from congruence.search.rerank import Ranked, rerank
from congruence.search.snapshot import Scored, ShardSet, Snapshot
from congruence.store.collab_signal import Partners

MAX_K = 1000
REFINE_FACTOR, REFINE_EXTRA = 4, 20
# (space, seqs) -> (seqs found, (n, d) float32 vectors): the float32 vectors of compressed codes
ExactVectors = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]
# (queries, each one's breadth, each one's excluded seqs) -> each one's FAISS (seqs, scores), best first
Search = Callable[[np.ndarray, list[int], list[np.ndarray]], list["Ranked"]]
_NONE = np.zeros(0, np.int64)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"must be a whole number from 1 to {MAX_K}, got {k!r}", field="k")
    return k


def retrieve(
    snap: Snapshot,
    xq: np.ndarray,
    k: int,
    *,
    exact: ExactVectors,
    candidates: int,
    selection: Selection | None = None,
    brand_posts: Sequence[np.ndarray | None] | None = None,
    exclude: Sequence[np.ndarray] | None = None,
    feedback: Sequence[Marked | None] | None = None,
    filters: Filters | None = None,
    partners: Sequence[Partners | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(D, I): (nq, k) float32 scores and int64 seqs of each query's best k, best first.

    Over a sharded snapshot (``snap.shards``: the ingress of sharded serving) the two parts
    that need a shard's own data go to the shards: FAISS' top lists (each shard searches its
    accounts with ``filters``; the lists are merged by score, so the candidates are the
    single process's) and the head's scores of the candidates (each shard scores its own, the
    order is made here as ``rerank`` makes it). The rest runs here, on the same code.

    xq: (nq, d) L2-normalised queries in ``snap.space``. brand_posts: per query, its (P, d)
    per-post vectors in that space, or None (that query is not reranked). exclude: per
    query, seqs never returned (``similar``'s seeds, feedback's liked and disliked); they are
    searched for and dropped, so that a filter's selection stays shared by every query.
    feedback: per query, its relevance feedback or None. candidates: the rerank's (and the
    feedback's) breadth. exact: reads float32 vectors (the re-score of compressed codes, the
    feedback's terms). I = -1 pads a short list (D = -inf there); D = -inf also marks a
    candidate the head could not score or, with feedback, whose vector is gone (it keeps its
    FAISS rank, after the scored ones). partners: per query, its known partners (None: content
    only); a query with some, over a snapshot whose head carries a learned fusion, searches as
    wide as a rerank, gets the graph's candidates too and is ordered by the fusion
    (``collab_rank``; D is then its score). A reranked query that the fusion does not serve,
    whose partners name a brand category the head's cold-start blend knows, is ordered by that
    blend (``collab_rank.blend``; D is then its score).
    """
    check_k(k)
    xq = as_matrix(xq, snap.index.dim, name="query vectors")
    nq = len(xq)
    posts = list(brand_posts) if brand_posts is not None else [None] * nq
    skips = [np.asarray(e, np.int64) for e in exclude] if exclude is not None else [_NONE] * nq
    moves = list(feedback) if feedback is not None else [None] * nq
    told = list(partners) if partners is not None else [None] * nq
    if len(posts) != nq or len(skips) != nq or len(moves) != nq or len(told) != nq:
        raise ValueError(
            f"retrieve: {nq} queries, {len(posts)} brand post sets, {len(skips)} exclusions, {len(moves)} feedbacks"
            f" and {len(told)} partner sets"
        )
    reranked = [snap.reranks and p is not None for p in posts]
    fusion = fusion_of(snap)
    collab = {i: p for i, p in enumerate(told) if p is not None and len(p) and fusion is not None}
    # a fused list holds the content top ``candidates``, as those the fusion learned on
    breadth = [
        max(k, candidates) if r or m is not None or i in collab else k
        for i, (r, m) in enumerate(zip(reranked, moves, strict=True))
    ]
    # HNSW's 8-bit codes are re-scored from PostgreSQL; IVF-PQ re-scores its own from its 8-bit vectors on disk
    refined = [i for i, r in enumerate(reranked) if not r and moves[i] is None and snap.index.codec == "sq8"]
    wanted = [n + len(skips[i]) for i, n in enumerate(breadth)]
    for i in refined:
        wanted[i] += (REFINE_FACTOR - 1) * breadth[i] + REFINE_EXTRA
    search = _searcher(snap, selection, filters, [p if r else None for p, r in zip(posts, reranked, strict=True)])
    lists = search(xq, wanted, skips)
    if refined:
        lists = _refine(snap, xq, lists, refined, exact)
    lists = [(seqs[:n], sc[:n]) for (seqs, sc), n in zip(lists, breadth, strict=True)]
    joined: dict[int, np.ndarray] = {}
    if collab:
        allowed = collab_rank.allowed_rows(snap, selection, filters)
        lists, joined = collab_rank.join(snap, lists, collab, allowed, skips)
        plain = [i for i in collab if not reranked[i]]  # the graph's candidates get the query's cosine
        if plain:
            lists = _refine(snap, xq, lists, plain, exact)
    fed = [i for i, m in enumerate(moves) if m is not None]
    if fed:
        lists = _gather(lists, [(i, m, breadth[i]) for i in fed if (m := moves[i]) is not None], search, skips)
    todo = [i for i, r in enumerate(reranked) if r]
    if todo:
        assert snap.head is not None
        brands = [p for i in todo if (p := posts[i]) is not None]
        cands = [lists[i][0] for i in todo]
        if isinstance(search, _ShardSearch):  # the shards scored their own lists in the search already
            known = search.known
            ranked = search.shards.rerank(brands, cands, [known[i] for i in todo] if known is not None else None)
        else:
            ranked = rerank(snap.head, snap.index, brands, cands)
        for i, pair in zip(todo, ranked, strict=True):
            lists[i] = pair
    if fed:
        lists = _with_feedback(
            snap, xq, lists, [(i, m, reranked[i]) for i in fed if (m := moves[i]) is not None], exact
        )
    lists = collab_rank.order(snap, lists, told, collab, joined, reranked)
    return _pack(lists, k)


def _gather(
    lists: list[Ranked],
    fed: list[tuple[int, Marked, int]],
    search: Search,
    skips: list[np.ndarray],
) -> list[Ranked]:
    """``lists`` with each fed query's candidates joined by those of its moved query (as many)
    and the ``params.neighbours`` nearest of each liked influencer it searches around, in that order,
    without repeats (their scores are the searches'; ``_with_feedback`` replaces them)."""
    rows: list[np.ndarray] = []
    wanted: list[int] = []
    owner: list[int] = []
    size: list[int] = []
    for i, m, n in fed:
        assert m.moved is not None, "feedback that was not applied (feedback.apply)"
        rows += [m.moved[None], m.around]
        size += [n] + [m.params.neighbours] * len(m.around)
        wanted += [w + len(skips[i]) for w in size[len(wanted) :]]
        owner += [i] * (1 + len(m.around))
    found = search(np.concatenate(rows).astype(np.float32), wanted, [skips[i] for i in owner])
    out = list(lists)
    for i, _, _ in fed:
        parts = [out[i]] + [(f[0][:w], f[1][:w]) for f, o, w in zip(found, owner, size, strict=True) if o == i]
        seqs, scores = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        _, first = np.unique(seqs, return_index=True)
        keep = np.sort(first)
        out[i] = (seqs[keep], scores[keep])
    return out


def _with_feedback(
    snap: Snapshot, xq: np.ndarray, lists: list[Ranked], fed: list[tuple[int, Marked, bool]], exact: ExactVectors
) -> list[Ranked]:
    """Each fed query's candidates scored by what the query alone gives them (the head's
    rerank score, or the exact cosine to the query) plus ``s * Marked.terms`` (s: the head's
    weight of one pooled cosine when reranked, else 1), best first; candidates without a
    score or a vector follow, -inf, in their order (one vector read for all, and one in
    ``CONTENT_SPACE`` when a query's terms use it)."""
    every = np.concatenate([lists[i][0] for i, _, _ in fed])
    vecs, where = _read(snap, exact, every, xq.shape[1])
    content: tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None = None
    if any(m.wants_content for _, m, _ in fed):
        found, cvecs = exact(CONTENT_SPACE, every)
        content = (cvecs, _rows_of(found))
    scale = float(snap.head.mix[0].detach()) if snap.head is not None else 1.0
    out = list(lists)
    for i, m, reranked in fed:
        cand, sc = lists[i]
        at = where(cand)
        ok = at >= 0
        base = sc.astype(np.float64) if reranked else np.full(len(cand), -np.inf)
        if not reranked:
            base[ok] = vecs[at[ok]] @ xq[i].astype(np.float64)
        new = np.full(len(cand), -np.inf)
        live = ok & np.isfinite(base)
        cv, has = None, None
        if content is not None and m.wants_content:
            crow = content[1](cand[live])
            has = crow >= 0
            cv = content[0][np.maximum(crow, 0)] if len(content[0]) else None
        new[live] = base[live] + (scale if reranked else 1.0) * m.terms(vecs[at[live]], cv, has)
        order = np.argsort(-new, kind="stable")
        out[i] = (cand[order], new[order].astype(np.float32))
    return out


def _searcher(
    snap: Snapshot, selection: Selection | None, filters: Filters | None, brand_posts: list[np.ndarray | None]
) -> Search:
    """FAISS' top lists for ``retrieve``: of this snapshot's index, or of every shard's merged."""
    if snap.shards is None:
        return lambda xq, wanted, skips: _search(snap, xq, wanted, selection, skips)
    return _ShardSearch(snap.shards, filters or Filters(), brand_posts)


class _ShardSearch:
    """Every shard's FAISS top lists, merged; the first call (the queries' own search) also
    brings the head's scores of what each shard returned (``known``), for the rerank."""

    def __init__(self, shards: ShardSet, filters: Filters, brand_posts: list[np.ndarray | None]):
        self.shards, self.filters, self.brand_posts = shards, filters, brand_posts
        self.known: list[Scored] | None = None

    def __call__(self, xq: np.ndarray, wanted: list[int], skips: list[np.ndarray]) -> list[Ranked]:
        first = self.known is None
        lists, known = self.shards.search(xq, wanted, self.filters, self.brand_posts if first else None)
        if first:
            self.known = known
        out = []
        for (seqs, sc), n, skip in zip(lists, wanted, skips, strict=True):
            keep = ~np.isin(seqs[:n], skip)
            out.append((seqs[:n][keep], sc[:n][keep]))
        return out


def _search(
    snap: Snapshot, xq: np.ndarray, wanted: list[int], selection: Selection | None, skips: list[np.ndarray]
) -> list[Ranked]:
    """Per query, FAISS' (seqs, scores) of its ``wanted`` best but those it excludes: one
    search per breadth."""
    out: list[Ranked] = [(_NONE, np.zeros(0, np.float32))] * len(xq)
    for n in sorted(set(wanted)):
        rows = np.flatnonzero(np.asarray(wanted) == n)
        D, L = snap.index.search(xq[rows], n, allowed=selection)
        for d, seqs, r in zip(D, L, rows, strict=True):
            keep = (seqs >= 0) & ~np.isin(seqs, skips[r])
            out[r] = (seqs[keep], d[keep])
    return out


def _refine(snap: Snapshot, xq: np.ndarray, lists: list[Ranked], which: list[int], exact: ExactVectors) -> list[Ranked]:
    """``lists`` with those of queries ``which`` re-scored with their candidates' float32
    vectors (one read for all), best first; a candidate whose vector is gone keeps its FAISS
    score."""
    vecs, where = _read(snap, exact, np.concatenate([lists[i][0] for i in which]), xq.shape[1])
    out = list(lists)
    for i in which:
        cand, sc = lists[i]
        at = where(cand)
        new = sc.astype(np.float32, copy=True)
        new[at >= 0] = vecs[at[at >= 0]] @ xq[i]
        order = np.argsort(-new, kind="stable")
        out[i] = (cand[order], new[order])
    return out


def _read(
    snap: Snapshot, exact: ExactVectors, seqs: np.ndarray, dim: int
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The float32 vectors of ``seqs`` in one read, (n, dim), and a function giving each of
    some seqs its row there (-1: no vector, the account changed since the index was built)."""
    found, vecs = exact(snap.space, seqs)
    if not len(found):  # nothing passed the filter, or no vector is left: (0, 0) from the store
        vecs = np.zeros((0, dim), np.float32)
    return vecs, _rows_of(found)


def _rows_of(found: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving each of some seqs its row in ``found`` (-1: not there)."""
    row = np.full(int(found.max()) + 1 if len(found) else 1, -1, np.int64)
    row[found] = np.arange(len(found))
    return lambda cand: np.where(cand < len(row), row[np.minimum(cand, len(row) - 1)], -1)


def _pack(lists: list[Ranked], k: int) -> tuple[np.ndarray, np.ndarray]:
    D = np.full((len(lists), k), -np.inf, np.float32)
    I = np.full((len(lists), k), -1, np.int64)  # noqa: E741 (FAISS' name)
    for i, (seqs, sc) in enumerate(lists):
        n = min(k, len(seqs))
        D[i, :n], I[i, :n] = sc[:n], seqs[:n]
    return D, I
