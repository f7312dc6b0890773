"""The one place where vectors are checked, cast and normalised.

Every vector that enters the store, the index or a model goes through
:func:`as_matrix`; every vector that must be L2-normalised goes through
:func:`l2_normalize`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_matrix(x: Any, d: int | None = None, *, name: str = "vectors") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array of shape (n, d).

    A 1-d input becomes one row. Raises ``ValueError`` for a wrong number of
    dimensions, a wrong width, or non-finite values.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected ndim to be 1 or 2, got {a.ndim}")
    if d is not None and a.shape[1] != d:
        raise ValueError(f"{name}: expected {d} dimensions, not {a.shape[1]}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray(a)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (all-zero rows stay zero). float32."""
    a = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(a.astype(np.float64), axis=-1, keepdims=True)  # float64: no overflow
    return (a / np.maximum(norms, eps)).astype(np.float32, copy=False)
