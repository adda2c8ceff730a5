"""Cosines and weighted means whose every bit is the same for any block shape, BLAS kernel or CPU.

A float32 matrix product sums its terms in an order chosen by the BLAS kernel, and the kernel
depends on the shapes and the CPU: on an AVX2-only CPU, the same paper's similarities came out
different in the last bits when it was compared in a block of 16 papers or of 203 (OpenBLAS's
Haswell kernels; ``OPENBLAS_CORETYPE=Haswell`` shows it on any x86-64 machine), so the map
positions of the sampled fit's papers depended on the part they were placed in.

Here the order does not matter because no sum rounds: :func:`on_grid` rounds each component to
a multiple of 2^-``GRID_BITS`` (float32's own spacing at 1.0; a unit vector's components move by
at most 3e-8), so each component is an integer times 2^-24 of at most 26 bits, each product of
two an integer times 2^-48 of at most 52 bits, and every partial sum of a dot product of two
vectors of norm at most ``MAX_NORM`` is at most 16 in magnitude (Cauchy-Schwarz): a multiple of
2^-48 of at most 2^4 is an integer of at most 2^52 units, which float64 holds exactly. So
:func:`grid_dot` is exact, whatever order, blocking, threading or fused multiply-add the BLAS
uses, and so is its result on every CPU. :func:`weighted_mean` sums a fixed, small number of
terms in a fixed order with numpy's element-wise operations (IEEE-rounded, never fused),
which give the same bits on every CPU.
"""

from __future__ import annotations

import numpy as np

GRID_BITS = 24
_SCALE = float(2**GRID_BITS)
# Rows longer than this could make a partial sum reach 16 and lose the exactness; embeddings
# are unit rows, so this only rejects inputs that are not embeddings at all.
MAX_NORM = 4.0


def on_grid(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` with each component rounded to a multiple of 2^-24: ndarray of the same shape, float64.

    Raises ValueError when a row is longer than ``MAX_NORM`` (the products would no longer be exact).
    """
    grid = np.rint(np.asarray(vectors, dtype=np.float64) * _SCALE) / _SCALE
    if grid.size:
        longest = float(np.sqrt(np.max(np.einsum("...d,...d->...", grid, grid))))
        if not longest <= MAX_NORM:
            raise ValueError(f"rows of norm up to {MAX_NORM:g} expected (unit embeddings), found one of {longest:.3g}")
    return grid


def grid_dot(rows: np.ndarray, columns_t: np.ndarray) -> np.ndarray:
    """Exact dot products of rows on the grid: ndarray of shape (n_rows, n_columns), float64.

    rows: ndarray of shape (n_rows, dim) and columns_t: ndarray of shape (dim, n_columns), both
    from :func:`on_grid` (rows of norm at most ``MAX_NORM``). Every entry is the exact dot
    product, so it does not depend on how many rows come at once or on the CPU.
    """
    return rows @ columns_t


def row_sums(values: np.ndarray) -> np.ndarray:
    """Sum of each row of ``values`` (n, k), added left to right: ndarray of shape (n,) float64."""
    values = np.asarray(values, dtype=np.float64)
    total = np.zeros(values.shape[0], dtype=np.float64)
    for column in range(values.shape[1]):
        total += values[:, column]
    return total


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each row's weighted mean of its ``k`` values, in a fixed order: ndarray of shape (n, d) float64.

    weights: ndarray of shape (n, k), non-negative with a positive sum per row; values: ndarray
    of shape (n, k, d). Row i is (sum_j weights[i, j] * values[i, j]) / sum_j weights[i, j],
    each sum taken left to right, so a row's result depends on its own inputs alone.
    """
    weights = np.asarray(weights, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    total = np.zeros((values.shape[0], values.shape[2]), dtype=np.float64)
    for column in range(weights.shape[1]):
        total += weights[:, column, None] * values[:, column]
    return total / row_sums(weights)[:, None]
