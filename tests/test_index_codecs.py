"""Compressed HNSW storage (sq8) and the per-post vectors kept beside the index, against
brute force and the float32 originals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from congruence.indexer.index import EXACT_SCAN_FLOATS, SUBSET_FRACTION, VectorIndex
from congruence.indexer.index_sync import IndexLayout
from congruence.indexer.post_matrix import PostMatrix, quantize
from tests.test_index import brute_force, build, recall, seqs_for, synthetic


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xb, xq = synthetic(nb=4000, nq=40, d=64, seed=21)
    return xb, xq, seqs_for(len(xb))


@pytest.fixture(scope="module")
def sq8(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> VectorIndex:
    xb, _, seqs = data
    return build("hnsw", xb, seqs, "sq8")


def test_sq8_recall_at_10_against_float_brute_force(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], sq8: VectorIndex
) -> None:
    xb, xq, seqs = data
    D, L = sq8.search(xq, 10)
    _, I_ref = brute_force(xq, xb, 10)
    # tight clusters in 64-d are hard on 8-bit codes (near-ties swap); the true top 10 is
    # always among the top 20, which is what a rerank of 200 candidates needs
    assert recall(L, seqs[I_ref]) >= 0.92
    assert recall(sq8.search(xq, 20)[1], seqs[I_ref]) >= 0.99
    assert (np.diff(D, axis=1) <= 1e-6).all()
    # a quarter of float32's bytes per vector
    assert sq8.vectors().shape == xb.shape and np.abs(sq8.vectors() - xb).max() < 0.02


def test_sq8_selective_filter_is_exact_over_the_codes(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], sq8: VectorIndex
) -> None:
    xb, xq, seqs = data
    allowed = np.zeros(len(xb), bool)
    allowed[np.random.default_rng(3).choice(len(xb), 150, replace=False)] = True
    assert allowed.sum() < SUBSET_FRACTION * len(xb)
    D, L = sq8.search(xq, 10, allowed=allowed)
    # exact over the decoded vectors: the same seqs as brute force on what is stored
    _, I_dec = brute_force(xq, sq8.vectors(), 10, allowed)
    np.testing.assert_array_equal(L, seqs[I_dec])
    _, I_ref = brute_force(xq, xb, 10, allowed)
    assert recall(L, seqs[I_ref]) >= 0.92
    assert np.isin(L, seqs[allowed]).all()


def test_sq8_save_load_round_trip_and_later_adds(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray, np.ndarray], sq8: VectorIndex
) -> None:
    xb, xq, _ = data
    man = sq8.save(tmp_path, "pooled", "m", 1)
    loaded, man2 = VectorIndex.load(tmp_path)
    assert man2 == man and man.codec == "sq8" and loaded.codec == "sq8"
    for mask in (None, np.random.default_rng(4).random(len(xb)) < 0.5):
        np.testing.assert_array_equal(sq8.search(xq, 10, allowed=mask)[1], loaded.search(xq, 10, allowed=mask)[1])
    # the ranges learnt at build time serve accounts added later (trained once, not again)
    loaded.add(np.array([7]), np.array([2]), xq[:1])
    assert loaded.search(xq[:1], 1)[1][0, 0] == 7


def test_flat_refuses_sq8() -> None:
    with pytest.raises(
        ValueError, match="index codec must be float32, sq8 for hnsw, or pq for ivfpq, got 'sq8' for flat"
    ):
        VectorIndex(8, "flat", "sq8")
    with pytest.raises(ValueError, match="got 'pq' for hnsw"):
        VectorIndex(8, "hnsw", "pq")
    with pytest.raises(ValueError, match="got 'float32' for ivfpq"):
        VectorIndex(8, "ivfpq", "float32")
    with pytest.raises(ValueError, match="needs a trained template"):
        VectorIndex(8, "ivfpq", "pq")


def test_layout_picks_kind_and_codec_by_size() -> None:
    layout = IndexLayout(exact_threshold=10, compress_threshold=100)
    assert [layout.shape_for(n) for n in (0, 10, 11, 100, 101)] == [
        ("flat", "float32"),
        ("flat", "float32"),
        ("hnsw", "float32"),
        ("hnsw", "float32"),
        ("hnsw", "sq8"),
    ]


# -- per-post vectors ---------------------------------------------------------------------------


def posts_of(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_quantize_error_is_at_most_half_a_step_per_component() -> None:
    rows = posts_of(np.random.default_rng(0), 50, 32)
    rows[3] = 0.0
    codes, scales = quantize(rows)
    assert codes.dtype == np.int8 and scales[3] == 0 and (codes[3] == 0).all()
    err = np.abs(codes.astype(np.float32) * scales[:, None] - rows)
    assert (err <= scales[:, None] / 2 + 1e-7).all()
    assert (np.abs(codes).max(axis=1)[np.arange(50) != 3] == 127).all()


def test_post_matrix_padded_equals_the_rows_given() -> None:
    rng = np.random.default_rng(1)
    sets = [posts_of(rng, n, 16) for n in (3, 1, 5)] + [None, np.zeros((0, 16), np.float32)]
    pm = PostMatrix(16)
    pm.append(sets[:2])
    pm.append(sets[2:])
    np.testing.assert_array_equal(pm.count, [3, 1, 5, -1, 0])
    out, mask = pm.padded(np.array([2, 0, 4]))
    assert out.shape == (3, 5, 16)
    np.testing.assert_array_equal(mask.sum(axis=1), [5, 3, 0])
    for row, want in zip(out, [sets[2], sets[0]], strict=False):
        np.testing.assert_allclose(row[: len(want)], want, atol=1 / 254)
    assert (out[1, 3:] == 0).all() and (out[2] == 0).all()
    assert pm.of(3) is None and pm.of(4).shape == (0, 16)
    np.testing.assert_allclose(pm.of(1), sets[1], atol=1 / 254)


def test_index_keeps_posts_aligned_through_replace_remove_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    d, nb = 8, 60
    xb = posts_of(rng, nb, d)
    seqs = seqs_for(nb)
    sets = [posts_of(rng, int(rng.integers(1, 6)), d) for _ in range(nb)]
    index = VectorIndex(d, "flat", post_dim=d)
    with pytest.raises(ValueError, match="posts: one entry per added vector"):
        index.add(seqs, np.ones(nb, np.int64), xb)
    index.add(seqs, np.ones(nb, np.int64), xb, sets)
    new = posts_of(rng, 2, d)
    # a seq repeated in one batch: the last row wins, with its posts
    index.add(np.array([seqs[5], seqs[5]]), np.array([2, 3]), xb[:2], [posts_of(rng, 4, d), new])
    index.remove(seqs[7:8])
    index.save(tmp_path, "head:v", "head:v", 0)
    loaded, man = VectorIndex.load(tmp_path)
    assert man.post_dim == d and "post_codes.npy" in man.checksums
    for ix in (index, loaded):
        assert ix.posts is not None
        pos = ix.positions(seqs)
        assert pos[7] == -1
        np.testing.assert_allclose(ix.posts.of(int(pos[5])), new, atol=1 / 254)
        for j in (0, 30, 59):
            np.testing.assert_allclose(ix.posts.of(int(pos[j])), sets[j], atol=1 / 254)


def test_a_filter_with_few_allowed_vectors_is_scanned_exactly(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """600 of 4,000 pass (15 %, over SUBSET_FRACTION) but hold few floats: exact, not the graph."""
    xb, xq, seqs = data
    index = build("hnsw", xb, seqs)
    allowed = np.random.default_rng(5).random(len(xb)) < 0.15
    assert allowed.sum() > SUBSET_FRACTION * len(xb) and allowed.sum() * xb.shape[1] <= EXACT_SCAN_FLOATS
    D, L = index.search(xq, 10, allowed=allowed)
    D_ref, I_ref = brute_force(xq, xb, 10, allowed)
    np.testing.assert_array_equal(L, seqs[I_ref])
    np.testing.assert_allclose(D, D_ref, atol=1e-5)
