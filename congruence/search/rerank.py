"""Reranking FAISS candidates with the full congruence head.

FAISS ranks by the cosine of pooled head embeddings; the head's score also compares the
brand's posts with each candidate's posts (set to set), from per-post projections computed
at index time and held in memory beside the index, so a query costs a small batched
forward pass and no database read for the candidates. Several brands' lists are scored per
forward pass (``rerank_batch.score_lists``): a match is a batch of one, an export a batch
of hundreds, and both go through this one function.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from congruence.indexer.index import VectorIndex
from congruence.search.rerank_batch import Gather, score_lists
from congruence.store.postsets import PostSets
from congruence.training.model import CongruenceHead, brand_accounts

Ranked = tuple[np.ndarray, np.ndarray]  # (seqs int64, scores float32), best first


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny tensor ops on one thread: at a few MFLOP, waking a thread pool costs more
    than it saves (measured 2-7 ms vs ~100 ms per rerank on a busy 2-core machine; two
    threads measured no faster for an export's batches on 2 busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rerank(
    head: CongruenceHead, index: VectorIndex, brand_posts: Sequence[np.ndarray], candidates: Sequence[np.ndarray]
) -> list[Ranked]:
    """Each brand's candidates ordered by the head's score, best first (ties keep the FAISS
    order); candidates whose per-post vectors are missing (changed since the space was
    computed) follow, unscored (-inf), in their FAISS order.

    brand_posts[i]: (Pb, d) per-post projections of brand i;
    candidates[i]: its candidates' seqs in FAISS order. The candidates' per-post vectors
    come from ``index.posts``.
    """
    posts = index.posts
    if posts is None:
        return [(c, np.full(len(c), -np.inf, np.float32)) for c in candidates]
    todo = []  # (brand, its query, scorable seqs, their positions)
    out: list[Ranked] = []
    for i, (seqs, bp) in enumerate(zip(candidates, brand_posts, strict=True)):
        pos = index.positions(seqs)
        have = (pos >= 0) & (posts.count[np.maximum(pos, 0)] > 0)
        out.append((seqs[~have], np.full(int((~have).sum()), -np.inf, np.float32)))
        if have.any():
            todo.append((i, bp, seqs[have], pos[have]))
    scores = _score(
        head,
        [t[1] for t in todo],
        [t[3] for t in todo],
        posts.padded,
        posts.width,
    )
    for (i, _, scorable, _), sc in zip(todo, scores, strict=True):
        order = np.argsort(-sc, kind="stable")
        rest, unscored = out[i]
        out[i] = (np.concatenate([scorable[order], rest]), np.concatenate([sc[order].astype(np.float32), unscored]))
    return out


def _score(
    head: CongruenceHead, queries: Sequence[np.ndarray], keys: Sequence[np.ndarray], gather: Gather, width: int
) -> list[np.ndarray]:
    """Each query's scores of its candidates (``keys``), in one ``score_lists`` call."""
    with one_thread():
        scores, _ = score_lists(head, list(queries), list(keys), gather, width)
    return scores


def describe_new_brand(
    head: CongruenceHead, image_vecs: np.ndarray, text_vec: np.ndarray | None, d_image: int, d_text: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pooled (d,), per-post (P, d)) head embeddings of a brand given as images + one text,
    through the head's brand tower.

    Each image becomes a post captioned with the text; text alone is one caption-only post.
    Inputs are L2-normalised encoder outputs, as stored for corpus posts.
    """
    txt = np.zeros(d_text, np.float32) if text_vec is None else np.asarray(text_vec, np.float32)
    rows = [np.concatenate([img, txt]) for img in image_vecs] or [np.concatenate([np.zeros(d_image), txt])]
    feats = np.stack(rows).astype(np.float32)
    sets = PostSets(
        ["new"],
        feats,
        np.asarray([0, len(rows)], np.int64),
        [f"p{i}" for i in range(len(rows))],
        ["brand"],
        [""],
        np.asarray([-1], np.int64),
        d_image,
        d_text,
    )
    per_post = head.project_posts(sets)
    return head.pool_projected(per_post, sets.offsets, brand_accounts(sets))[0], per_post
