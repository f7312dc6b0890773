"""SyntheticDataset, the seeded vectors the index tests and benchmarks share: its ground truth is brute force."""

from __future__ import annotations

import faiss
import numpy as np

from congruence.datasets.synthetic import SyntheticDataset, recall_at_k


def brute_force_ids(xq: np.ndarray, xb: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """(nq, k) rows of the exact top-k inner products, in float64 over every pair."""
    scores = xq.astype(np.float64) @ xb.astype(np.float64).T
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_seeded_shapes_and_unit_rows() -> None:
    ds = SyntheticDataset(24, 700, 30, seed=3)
    assert ds.xb.shape == (700, 24) and ds.xq.shape == (30, 24)
    assert ds.xb.dtype == ds.xq.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ds.xb, axis=1), 1.0, atol=1e-5)
    again, other = SyntheticDataset(24, 700, 30, seed=3), SyntheticDataset(24, 700, 30, seed=4)
    np.testing.assert_array_equal(ds.xb, again.xb)
    np.testing.assert_array_equal(ds.xq, again.xq)
    assert not np.array_equal(ds.xb, other.xb)


def test_groundtruth_is_brute_force() -> None:
    ds = SyntheticDataset(32, 3000, 50, seed=0)
    gt = ds.get_groundtruth(10)
    assert gt.shape == (50, 10) and gt.dtype == np.int64
    np.testing.assert_array_equal(gt, brute_force_ids(ds.xq, ds.xb, 10))
    flat = faiss.IndexFlatIP(ds.d)
    flat.add(ds.xb)
    np.testing.assert_array_equal(gt, flat.search(ds.xq, 10)[1])
    allowed = np.random.default_rng(1).random(ds.nb) < 0.1
    gt_allowed = ds.get_groundtruth(10, allowed)
    np.testing.assert_array_equal(gt_allowed, brute_force_ids(ds.xq, ds.xb, 10, allowed))
    assert allowed[gt_allowed].all()


def test_clustered_so_neighbours_are_much_closer_than_random_pairs() -> None:
    """What makes a graph index behave as on real embeddings: the top-10 are far above the typical pair."""
    ds = SyntheticDataset(64, 2000, 40, seed=5)
    gt = ds.get_groundtruth(10)
    near = np.take_along_axis(ds.xq @ ds.xb.T, gt, axis=1).mean()
    typical = float(np.median(ds.xq @ ds.xb.T))
    assert near > 0.7 and abs(typical) < 0.1


def test_recall_at_k_counts_shared_ids_and_ignores_padding() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert recall_at_k(found, truth) == (2 / 4 + 4 / 4) / 2
