"""The one vector boundary: exact error texts (pgvector-python style) and normalisation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from congruence.core.vectors import as_matrix, l2_normalize

# -- as_matrix -------------------------------------------------------------------------------------


def test_one_d_becomes_one_row() -> None:
    a = as_matrix([1, 2, 3])
    assert a.shape == (1, 3)
    np.testing.assert_array_equal(a, [[1, 2, 3]])
    assert as_matrix(np.arange(4.0), 4).shape == (1, 4)


def test_two_d_kept() -> None:
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    a = as_matrix(x, 4)
    assert a.shape == (3, 4)
    np.testing.assert_array_equal(a, x)
    assert as_matrix(np.zeros((0, 8)), 8).shape == (0, 8)


@pytest.mark.parametrize("x, ndim", [(np.zeros((2, 3, 4)), 3), (np.float32(1.0), 0), (np.zeros((1, 1, 1, 1)), 4)])
def test_wrong_ndim(x: np.ndarray, ndim: int) -> None:
    with pytest.raises(ValueError) as e:
        as_matrix(x)
    assert str(e.value) == f"vectors: expected ndim to be 1 or 2, got {ndim}"


def test_three_d_exact_message() -> None:
    with pytest.raises(ValueError, match=re.escape("vectors: expected ndim to be 1 or 2, got 3")):
        as_matrix(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("x, d, got", [(np.zeros((2, 3)), 4, 3), (np.zeros(5), 4, 5), (np.zeros((1, 0)), 4, 0)])
def test_wrong_width(x: np.ndarray, d: int, got: int) -> None:
    with pytest.raises(ValueError) as e:
        as_matrix(x, d)
    assert str(e.value) == f"vectors: expected {d} dimensions, not {got}"


def test_name_in_message() -> None:
    with pytest.raises(ValueError) as e:
        as_matrix(np.zeros((1, 3)), 8, name="query vectors")
    assert str(e.value) == "query vectors: expected 8 dimensions, not 3"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])  # 1e39 overflows float32 to inf
def test_non_finite_refused(bad: float) -> None:
    x = np.ones((3, 4))
    x[1, 2] = bad
    with pytest.raises(ValueError) as e:
        as_matrix(x, 4)
    assert str(e.value) == "vectors: contains NaN or infinite values"


def test_non_finite_checked_after_width() -> None:
    with pytest.raises(ValueError, match=re.escape("vectors: expected 4 dimensions, not 3")):
        as_matrix(np.full((1, 3), np.nan), 4)


@pytest.mark.parametrize(
    "x",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2],  # strided view
        np.arange(12, dtype=np.int64).reshape(3, 4),
        [[1, 2, 3, 4]] * 3,
    ],
)
def test_output_is_float32_c_contiguous(x: object) -> None:
    a = as_matrix(x, 4)
    assert a.dtype == np.float32
    assert a.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(a, np.asarray(x, np.float32))


# -- l2_normalize ----------------------------------------------------------------------------------


def test_unit_norms_and_direction_kept() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 32)) * rng.uniform(0.01, 100, size=(100, 1))
    y = l2_normalize(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y * np.linalg.norm(x, axis=1, keepdims=True), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(l2_normalize(y), y, rtol=1e-6)  # idempotent


def test_zero_rows_stay_zero() -> None:
    x = np.array([[0, 0, 0], [3, 4, 0], [0, 0, 0]], np.float32)
    y = l2_normalize(x)
    assert np.isfinite(y).all()
    np.testing.assert_array_equal(y[[0, 2]], 0)
    np.testing.assert_allclose(y[1], [0.6, 0.8, 0.0], rtol=1e-6)


def test_one_d_vector() -> None:
    y = l2_normalize(np.array([3.0, 4.0]))
    assert y.shape == (2,) and y.dtype == np.float32
    np.testing.assert_allclose(y, [0.6, 0.8], rtol=1e-6)


def test_input_not_modified() -> None:
    x = np.array([[3.0, 4.0]], np.float32)
    l2_normalize(x)
    np.testing.assert_array_equal(x, [[3.0, 4.0]])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_large_finite_rows_become_unit() -> None:
    x = np.full((1, 32), 1e19, np.float32)
    assert np.isfinite(as_matrix(x)).all()  # accepted at the boundary
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(x).astype(np.float64), axis=1), 1.0, rtol=1e-6)
