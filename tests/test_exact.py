"""Exact cosines on the grid and fixed-order means: the same bits for any block shape or kernel."""

from __future__ import annotations

import functools
import operator

import numpy as np
import pytest

from pipeline.cluster.neighbours import GRID_BITS, MAX_NORM, grid_dot, on_grid, row_sums, weighted_mean


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_grid_dot_is_the_exact_integer_dot_product_for_any_block():
    rng = np.random.default_rng(0)
    rows, columns = unit(rng.normal(size=(37, 384))), unit(rng.normal(size=(50, 384)))
    left, right = on_grid(rows), on_grid(columns)
    # On the grid, each component is an integer number of 2^-24 steps: the exact dot product in
    # integers (int64 cannot overflow: every partial sum is at most 2^52 steps of 2^-48).
    left_steps = np.rint(left * 2.0**GRID_BITS).astype(np.int64)
    right_steps = np.rint(right * 2.0**GRID_BITS).astype(np.int64)
    exact = (left_steps @ right_steps.T).astype(np.float64) / 2.0 ** (2 * GRID_BITS)
    assert np.array_equal(grid_dot(left, right.T), exact)
    for block in (1, 5, 36):
        pieces = [grid_dot(left[start : start + block], right.T) for start in range(0, len(left), block)]
        assert np.array_equal(np.vstack(pieces), exact)
    # The grid moves a cosine by far less than float32 resolution.
    assert np.abs(exact - rows.astype(np.float64) @ columns.astype(np.float64).T).max() < 1e-6


def test_on_grid_rounds_to_steps_of_two_to_the_minus_24_and_rejects_rows_that_are_not_embeddings():
    grid = on_grid(np.array([[0.1, -0.3, 2.0**-30]], dtype=np.float32))
    assert grid.dtype == np.float64
    assert np.array_equal(grid * 2.0**GRID_BITS, np.rint(grid * 2.0**GRID_BITS))
    assert grid[0, 2] == 0.0 and abs(grid[0, 0] - 0.1) <= 2.0 ** -(GRID_BITS + 1)
    with pytest.raises(ValueError, match="norm"):
        on_grid(np.full((2, 4), MAX_NORM, dtype=np.float32))
    with pytest.raises(ValueError, match="norm"):
        on_grid(np.array([[np.nan, 0.0]]))


def test_weighted_mean_of_a_row_depends_on_that_row_alone():
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.1, 1.0, (60, 15))
    values = rng.normal(size=(60, 15, 7))
    whole = weighted_mean(weights, values)
    assert np.allclose(whole, np.einsum("nk,nkd->nd", weights, values) / weights.sum(axis=1)[:, None])
    for row in (0, 17, 59):
        assert np.array_equal(weighted_mean(weights[row : row + 1], values[row : row + 1])[0], whole[row])
    # Left to right, as Python adds floats: not numpy's pairwise sum, whose order varies with the SIMD width.
    in_order = [functools.reduce(operator.add, row.tolist(), 0.0) for row in weights]
    assert row_sums(weights).tolist() == in_order
