"""Evaluation of a scorer on held-out brands, and the baselines to compare it with.

A scorer maps (postsets, brand_rows (nq,), candidate_rows (nb,)) to scores (nq, nb),
higher = better match. Every test brand ranks the same candidate set (Gan et al.,
ACM MM 2019); see :func:`test_candidates` for which influencers that is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence

import numpy as np
import torch

from congruence.core.errors import InvalidInput
from congruence.store.postsets import PostSets
from congruence.training.data import (
    Pair,
    assert_no_leak,
    held_out_influencers,
    index_pairs,
    influencer_rows,
    mean_features,
)
from congruence.training.model import CongruenceHead
from congruence.training.ranking_metrics import Metrics, evaluate_rankings
from congruence.training.sets import pad_posts

logger = logging.getLogger(__name__)

Scorer = Callable[[PostSets, np.ndarray, np.ndarray], np.ndarray]


def test_candidates(postsets: PostSets, pairs: Sequence[Pair], test_brands: Collection[str]) -> np.ndarray:
    """Rows of the influencers every test brand ranks, in ``postsets`` order.

    That is every influencer except those paired only with non-test (training) brands:
    the influencers paired with a test brand (the positives) plus all influencers in no
    pair or only in pairs of test brands.
    """
    return influencer_rows(postsets, exclude=held_out_influencers(pairs, set(test_brands)))


def candidate_rows(postsets: PostSets, influencers: Collection[str]) -> np.ndarray:
    """Rows of ``influencers`` in ``postsets`` order; ValueError naming ids that are not
    influencers with posts there."""
    index = postsets.index_of()
    wanted = set(influencers)
    bad = sorted(i for i in wanted if i not in index or postsets.kinds[index[i]] != "influencer")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"test influencers: not influencers with embedded posts: {', '.join(bad[:5])}{more}")
    return np.asarray(sorted(index[i] for i in wanted), dtype=np.int64)


def random_scorer(seed: int = 0) -> Scorer:
    """Uniform random scores, seeded: the chance baseline (AUC about 0.5)."""

    def score(postsets: PostSets, brand_rows: np.ndarray, candidate_rows: np.ndarray) -> np.ndarray:
        return np.random.default_rng(seed).random((brand_rows.size, candidate_rows.size))

    return score


def pooled_cosine(postsets: PostSets, brand_rows: np.ndarray, candidate_rows: np.ndarray) -> np.ndarray:
    """Cosine of mean raw post features: the no-training baseline."""
    return mean_features(postsets, brand_rows) @ mean_features(postsets, candidate_rows).T


def head_scorer(model: CongruenceHead, brand_chunk: int = 8, max_pairs: int = 8_000_000) -> Scorer:
    """Scores from a trained head: posts projected once, then brands x candidates in chunks.

    A chunk holds at most about ``max_pairs`` post-post similarities, which bounds memory
    whatever the number of posts per account.
    """

    def score(postsets: PostSets, brand_rows: np.ndarray, candidate_rows: np.ndarray) -> np.ndarray:
        brands = postsets.subset([int(r) for r in brand_rows])
        cands = postsets.subset([int(r) for r in candidate_rows])
        b_proj, c_proj = model.project_posts(brands), model.project_posts(cands)
        widest = max(1, int(np.diff(cands.offsets).max(initial=1)))
        out = np.zeros((brand_rows.size, candidate_rows.size), dtype=np.float32)
        for i in range(0, brand_rows.size, brand_chunk):
            bp, bm = _padded(b_proj, brands.offsets, i, i + brand_chunk, model.device)
            step = max(1, max_pairs // (bp.shape[0] * bp.shape[1] * widest))
            for j in range(0, candidate_rows.size, step):
                cp, cm = _padded(c_proj, cands.offsets, j, j + step, model.device)
                with torch.no_grad():
                    out[i : i + bp.shape[0], j : j + cp.shape[0]] = model.score(bp, bm, cp, cm).cpu().numpy()
        return out

    return score


def _padded(
    proj: np.ndarray, offsets: np.ndarray, a: int, b: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accounts a..b (clipped) of CSR projections as a padded tensor + mask on ``device``."""
    b = min(b, offsets.size - 1)
    rows = torch.from_numpy(proj[offsets[a] : offsets[b]]).to(device)
    return pad_posts(rows, offsets[a : b + 1] - offsets[a])


def evaluate(
    model_or_scorer: CongruenceHead | Scorer,
    postsets: PostSets,
    pairs: Sequence[Pair],
    test_brands: Collection[str],
    train_brands: Collection[str] | None = None,
    candidates: Collection[str] | None = None,
) -> Metrics:
    """Metrics of ranking the candidates for every test brand: ``candidates`` (influencer
    ids, e.g. a benchmark's held-out influencers) or, by default, ``test_candidates``.

    Refuses (ValueError naming the brands) a test set that shares a brand with
    ``train_brands`` or with the brands the model was trained on (``.train_brands``).
    Positives are the test brand's pairs among the candidates; brands without a pair are
    not counted.
    """
    test = set(test_brands)
    assert_no_leak(getattr(model_or_scorer, "train_brands", ()), test)
    if train_brands is not None:
        assert_no_leak(train_brands, test)
    scorer = head_scorer(model_or_scorer) if isinstance(model_or_scorer, CongruenceHead) else model_or_scorer
    index = postsets.index_of()
    unknown = sorted(b for b in test if b not in index)
    if unknown:
        raise InvalidInput(f"names unknown brand ids: {', '.join(unknown)}", field="test_brands")
    brand_ids = sorted(test)
    brand_rows = np.asarray([index[b] for b in brand_ids], dtype=np.int64)
    cand_rows = test_candidates(postsets, pairs, test) if candidates is None else candidate_rows(postsets, candidates)
    column = {int(r): j for j, r in enumerate(cand_rows)}
    positives = np.zeros((brand_rows.size, cand_rows.size), dtype=bool)
    row_of = {int(r): i for i, r in enumerate(brand_rows)}
    for b, i in index_pairs(postsets, pairs):
        if b in row_of and i in column:
            positives[row_of[b], column[i]] = True
    scores = np.asarray(scorer(postsets, brand_rows, cand_rows), dtype=np.float64)
    if scores.shape != positives.shape:
        raise ValueError(f"scorer: expected scores of shape {positives.shape}, got {scores.shape}")
    metrics = evaluate_rankings(
        scores,
        positives,
        brand_ids,
        [postsets.categories[int(r)] for r in brand_rows],
        [postsets.categories[int(r)] for r in cand_rows],
    )
    logger.info("evaluated %d brands against %d candidates: %s", metrics.n_brands, cand_rows.size, metrics.to_dict())
    return metrics


def _cell(x: float, digits: int) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def markdown_table(results: dict[str, Metrics]) -> str:
    """One row per method: AUC, cAUC, recall@10, recall@50, MedR, MRR, number of brands."""
    lines = [
        "| method | AUC | cAUC | R@10 | R@50 | MedR | MRR | brands |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in results.items():
        cells = [
            _cell(m.auc, 3),
            _cell(m.cauc, 3),
            _cell(m.recall_at_10, 3),
            _cell(m.recall_at_50, 3),
            _cell(m.medr, 1),
            _cell(m.mrr, 3),
            str(m.n_brands),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
