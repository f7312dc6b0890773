"""Reranking FAISS candidates with the full congruence head.

FAISS ranks by the cosine of pooled head embeddings; the head's score also compares the
brand's posts with each candidate's posts (set to set), from per-post projections computed
at index time and held in memory beside the index, so a query costs one small batched
forward pass and no database read for the candidates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from congruence.indexer.index import VectorIndex
from congruence.indexer.postsets import PostSets
from congruence.training.model import CongruenceHead


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run tiny tensor ops on one thread: at a few MFLOP, waking a thread pool costs more
    than it saves (measured 2-7 ms vs ~100 ms per rerank on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Candidate:
    seq: int
    account_id: str
    cosine: float


def rerank(head: CongruenceHead, index: VectorIndex, brand_posts: np.ndarray,
           candidates: Sequence[Candidate]) -> list[tuple[Candidate, float]]:
    """Candidates with their head scores, best first (ties keep the FAISS order).

    brand_posts: (Pb, d) per-post projections of the brand; the candidates' come from the
    index's in-memory ``posts``. A candidate whose projections are missing (changed since
    the space was computed) keeps its FAISS cosine rank at the end.
    """
    if not candidates or index.posts is None:
        return [(c, float("-inf")) for c in candidates]
    pos = index.positions(np.array([c.seq for c in candidates], np.int64))
    ok = (pos >= 0) & (index.posts.count[np.maximum(pos, 0)] > 0)
    have = [c for c, y in zip(candidates, ok, strict=True) if y]
    missing = [c for c, y in zip(candidates, ok, strict=True) if not y]
    scores = np.zeros(0, np.float32)
    if have:
        with _one_thread():
            cands, mask = index.posts.padded(pos[ok])
            scores = head.score_candidates(brand_posts, torch.from_numpy(cands), torch.from_numpy(mask))
    order = np.argsort(-scores, kind="stable")
    ranked = [(have[int(i)], float(scores[int(i)])) for i in order]
    return ranked + [(c, float("-inf")) for c in missing]


def describe_new_brand(head: CongruenceHead, image_vecs: np.ndarray, text_vec: np.ndarray | None,
                       d_image: int, d_text: int) -> tuple[np.ndarray, np.ndarray]:
    """(pooled (d,), per-post (P, d)) head embeddings of a brand given as images + one text.

    Each image becomes a post captioned with the text; text alone is one caption-only post.
    Inputs are L2-normalised encoder outputs, as stored for corpus posts.
    """
    txt = np.zeros(d_text, np.float32) if text_vec is None else np.asarray(text_vec, np.float32)
    rows = [np.concatenate([img, txt]) for img in image_vecs] or [np.concatenate([np.zeros(d_image), txt])]
    feats = np.stack(rows).astype(np.float32)
    sets = PostSets(["new"], feats, np.asarray([0, len(rows)], np.int64), [f"p{i}" for i in range(len(rows))],
                    ["brand"], [""], np.asarray([-1], np.int64), d_image, d_text)
    per_post = head.project_posts(sets)
    return head.pool_projected(per_post, sets.offsets)[0], per_post
