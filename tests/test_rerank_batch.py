"""The head's batched rerank: many brands' candidate lists in one forward pass, same scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from congruence.search.rerank_batch import groups, score_lists
from congruence.training.model import CongruenceHead, HeadConfig
from congruence.training.sets import pad_sets


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def head() -> CongruenceHead:
    torch.manual_seed(3)
    h = CongruenceHead(HeadConfig(16, 8, d_model=32))
    with torch.no_grad():  # a head whose two terms both matter, and a non-zero attention query
        h.mix.copy_(torch.tensor([2.0, -3.0]))
        assert h.query is not None
        h.query.normal_()
    return h.eval()


def test_score_lists_equals_score_candidates_brand_by_brand(head: CongruenceHead) -> None:
    rng = np.random.default_rng(0)
    d = head.config.d_model
    posts = [unit(rng, int(n), d) for n in rng.integers(1, 9, 300)]  # 300 influencers, 1-8 posts
    brands = [unit(rng, int(n), d) for n in rng.integers(1, 7, 23)]
    lists = [rng.choice(300, int(n), replace=False) for n in rng.integers(1, 60, 23)]  # lists of 1-59

    def gather(keys: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_sets([posts[k] for k in keys], d)

    want = [head.score_candidates(b, [posts[k] for k in ks]) for b, ks in zip(brands, lists, strict=True)]
    sizes = [len(ks) for ks in lists]
    for budget in (1, 60 * 8 * d * 5, 1 << 30):  # a brand a pass, a few brands a pass, all in one
        got, passes = score_lists(head, brands, lists, gather, width=8, budget=budget)
        assert passes == len(groups(sizes, 8, d, budget)) == {1: 23, 1 << 30: 1}.get(budget, passes)
        assert budget != 60 * 8 * d * 5 or 5 <= passes < 23
        for g, w in zip(got, want, strict=True):
            assert g.dtype == np.float32 and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=2e-6)
            assert (np.argsort(-g, kind="stable") == np.argsort(-w, kind="stable")).all()


def test_groups_stay_within_the_budget() -> None:
    sizes = [200, 10, 200, 200, 5, 1, 200]
    for budget in (200 * 10 * 4 * 2, 200 * 10 * 4 * 3, 1):
        packed = groups(sizes, 10, 4, budget)
        assert [i for g in packed for i in g] == list(range(len(sizes)))  # consecutive, each once
        for g in packed:
            assert len(g) == 1 or len(g) * max(sizes[i] for i in g) * 10 * 4 <= budget
    assert groups(sizes, 10, 4, 200 * 10 * 4 * 2) == [[0, 1], [2, 3], [4, 5], [6]]
    assert groups(sizes, 10, 4, 1) == [[i] for i in range(len(sizes))]
