"""Exact cosines on the grid and fixed-order means: the same bits for any block shape or kernel."""

from __future__ import annotations

import functools
import operator
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cluster.neighbours import GRID_BITS, MAX_NORM, cosine_knn, grid_dot, on_grid, row_sums, weighted_mean


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


def test_cosine_knn_is_the_exact_top_k_by_cosine_with_itself_first_and_ties_to_the_lower_row():
    rng = np.random.default_rng(2)
    vectors = unit(rng.normal(size=(300, 64)))
    vectors[[40, 41]] = vectors[7]  # exact duplicates of row 7: equal similarities, lower row first
    vectors[50] = unit(vectors[8:9] + 1e-4 * rng.normal(size=(1, 64)))[0]  # a near-duplicate of row 8
    rows, distances = cosine_knn(vectors, 10)
    assert rows.dtype == np.int32 and distances.dtype == np.float32 and rows.shape == distances.shape == (300, 10)
    # The brute force in integers: each row divided by its norm (summed left to right), put on the grid,
    # then exact integer dot products.
    wide = vectors.astype(np.float64)
    norms = np.sqrt([functools.reduce(operator.add, row.tolist(), 0.0) for row in wide * wide])
    normed = on_grid(wide / norms[:, None])
    steps = np.rint(normed * 2.0**GRID_BITS).astype(np.int64)
    exact = (steps @ steps.T).astype(np.float64) / 2.0 ** (2 * GRID_BITS)
    ranked = [sorted(range(300), key=lambda column: (-row[column], column)) for row in exact]
    # Itself first, whatever its duplicates score; then the others, equal ones by row.
    expected = np.array(
        [[index, *[column for column in row if column != index][:9]] for index, row in enumerate(ranked)]
    )
    assert expected[40, :3].tolist() == [40, 7, 41] and expected[50, :2].tolist() == [50, 8]
    assert np.array_equal(rows, expected)
    want = np.clip(1.0 - np.take_along_axis(exact, expected, axis=1), 0.0, 2.0).astype(np.float32)
    want[:, 0] = 0.0
    assert np.array_equal(distances, want)
    assert rows[8, 1] == 50 and rows[50, 1] == 8 and 0 < distances[8, 1] < 1e-6
    # Cosine distances: rows of any length (here up to 30) give the neighbours of their directions.
    lengths = rng.uniform(0.01, 30.0, (300, 1))
    longer_rows, longer_distances = cosine_knn(vectors * lengths, 10)
    assert (longer_rows == rows).mean() > 0.99 and np.abs(longer_distances - distances).max() < 1e-6
    # The float32 cosine distances scikit-learn computed before: the same neighbours, within float32 rounding.
    from sklearn.neighbors import NearestNeighbors

    sk_distances, _ = NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute").fit(vectors).kneighbors()
    assert np.abs(distances[:, 1:] - sk_distances[:, :9]).max() < 1e-6


def test_cosine_knn_in_blocks_of_rows_is_the_same_bits_as_in_one(monkeypatch):
    """Blocks bound its memory at any size (the default's neighbours could be exact above 4,096 papers)."""
    from pipeline.cluster import neighbours

    rng = np.random.default_rng(4)
    vectors = unit(rng.normal(size=(500, 48)))
    vectors[[70, 400]] = vectors[3]  # duplicates across blocks: itself first, then the lower row
    whole = cosine_knn(vectors, 12)
    monkeypatch.setattr(neighbours, "BLOCK_ELEMENTS", 500 * 37)  # blocks of 37 rows, the last one short
    blocked = neighbours.cosine_knn(vectors, 12)
    assert blocked[0].tolist() == whole[0].tolist() and blocked[1].tobytes() == whole[1].tobytes()
    assert whole[0][400, :3].tolist() == [400, 3, 70] and whole[0][3, :3].tolist() == [3, 70, 400]


KNN_SCRIPT = """
import hashlib
import numpy as np
from pipeline.cluster.neighbours import cosine_knn
rng = np.random.default_rng(5)
vectors = rng.normal(size=(1200, 384)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
rows, distances = cosine_knn(vectors, 15)
from pipeline.cluster.fit import curve_parameters
curves = np.array([curve_parameters(0.0), curve_parameters(0.1)])
print(hashlib.sha256(rows.tobytes() + distances.tobytes() + curves.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_cosine_knn_and_umaps_curve_are_the_same_bits_with_every_blas_and_numpy_kernel_this_cpu_runs():
    """OpenBLAS and numpy pick kernels by CPU; OPENBLAS_CORETYPE and NPY_DISABLE_CPU_FEATURES force older ones.

    With scikit-learn's float32 search, the seed papers' UMAP layout, hence their topics, changed with either
    (11 topics; 10 with OpenBLAS's Haswell kernels, 12 with numpy's AVX2 ones).
    """
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("OpenBLAS core types and numpy's X86_V4 are named for x86-64 CPUs only")
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    flags = set(next((line.split() for line in lines if line.startswith("flags")), []))
    settings = [{}, {"OPENBLAS_CORETYPE": "Prescott"}]
    settings += [{"OPENBLAS_CORETYPE": "Haswell"}] if "avx2" in flags else []
    settings += [{"NPY_DISABLE_CPU_FEATURES": "X86_V4", "OPENBLAS_CORETYPE": "Haswell"}] if "avx512f" in flags else []
    digests = {}
    for setting in settings:
        env = {**os.environ, **setting}
        done = subprocess.run([sys.executable, "-c", KNN_SCRIPT], env=env, capture_output=True, text=True, check=True)
        digests[str(setting)] = done.stdout.split()[-1]
    assert len(set(digests.values())) == 1, digests


def test_umaps_curve_parameters_are_umaps_fit_rounded_to_six_digits():
    from umap.umap_ import find_ab_params

    from pipeline.cluster.fit import CURVE_DIGITS, curve_parameters

    for min_dist in (0.0, 0.1, 0.5):
        fitted, rounded = find_ab_params(1.0, min_dist), curve_parameters(min_dist)
        assert np.allclose(rounded, fitted, rtol=1e-5) and rounded != tuple(fitted)
        assert all(len(f"{value:.12g}".replace(".", "").lstrip("0")) <= CURVE_DIGITS for value in rounded)
