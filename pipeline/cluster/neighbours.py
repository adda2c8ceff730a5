"""Nearest neighbours of the cluster package (placing papers by their neighbours), exact.

Cosines and weighted means whose every bit is the same for any block shape, BLAS kernel or CPU.

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
# Columns per group in nearest_columns: the group maxima (1/64 of the similarities) are
# partitioned instead of the whole rows.
NEAREST_GROUP = 64
_SCALE = float(2**GRID_BITS)
# Rows longer than this could make a partial sum reach 16 and lose the exactness; embeddings
# are unit rows, so this only rejects inputs that are not embeddings at all.
MAX_NORM = 4.0
# Similarities computed at once: a block of papers is compared with the whole reference, so it
# holds BLOCK_ELEMENTS // n_reference papers (419 against 20,000). Its similarity matrix
# (float32) and the mask of the entries kept take 5 bytes an element (40 MB), and the exact
# recomputation of the candidates (:func:`nearest_exact`) about as much again.
BLOCK_ELEMENTS = 1 << 23


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


def float32_error(dim: int, longest: float) -> float:
    """Bound on |float32 BLAS dot product - exact dot product on the grid| for rows of norm <= ``longest``.

    Any summation order of a float32 dot product of length ``dim`` errs by at most
    gamma_dim * sum|a_i b_i| <= gamma_dim * |a| |b| (Higham, Accuracy and Stability of Numerical
    Algorithms, 3.1), gamma_n = n u / (1 - n u) with u = 2^-24; the grid moves each component by
    at most 2^-25, which moves a dot product by at most 2^-25 sqrt(dim) (|a| + |b|).
    """
    unit_roundoff = 2.0**-24
    gamma = dim * unit_roundoff / (1.0 - dim * unit_roundoff)
    return gamma * longest * longest + 2.0**-25 * np.sqrt(dim) * 2.0 * longest


def nearest_columns(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest entries, largest first, the lower column first among equals.

    similarity: ndarray of shape (b, n), 1 <= k <= n. Returns the columns, ndarray of shape (b, k)
    int64, and their values, ndarray of shape (b, k). Exact, and 5-10x faster than argpartition
    on whole rows: the columns are cut into groups of ``NEAREST_GROUP``; at least k groups have
    a maximum as large as the k-th largest group maximum, so at least k entries are, and every
    one of a row's k largest is: only the (few) entries at or above it are sorted.
    """
    rows, columns = _candidates(similarity, k, 0.0)
    return _first_k(rows, columns, similarity[rows, columns], similarity.shape[0], k)


def _candidates(similarity: np.ndarray, k: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the entries within ``margin`` of the k-th largest group maximum of their row, or above it."""
    b, n = similarity.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the {n} columns, not {k}")
    group = max(1, min(NEAREST_GROUP, n // k))
    whole = n - n % group
    maxima = similarity[:, :whole].reshape(b, whole // group, group).max(axis=2)
    if whole < n:
        maxima = np.hstack([maxima, similarity[:, whole:].max(axis=1, keepdims=True)])
    bound = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
    rows, columns = np.nonzero(similarity >= (bound - margin)[:, None])
    return rows, columns


def _first_k(
    rows: np.ndarray, columns: np.ndarray, values: np.ndarray, b: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Of the entries (rows, columns, values), at least k per row of ``b``: each row's k largest, lower column first."""
    order = np.lexsort((columns, -values, rows))
    starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=b))[:-1]])
    take = order[starts[:, None] + np.arange(k)]
    return columns[take].astype(np.int64), values[take]


def nearest_exact(
    block: np.ndarray, reference_t: np.ndarray, block_grid: np.ndarray, reference_grid: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_columns` of the exact similarities (this module) at about a float32 product's cost.

    block: (b, dim) float32 and block_grid the same on the grid; reference_t: (dim, n) float32 and
    reference_grid: (n, dim) the same on the grid. The float32 product (whose last bits depend on
    the BLAS kernel) only finds the candidates: every column within three times its error bound
    of a row's k-th largest. Their exact similarities then choose, so the result is the same bits
    for any block and on any CPU. Returns columns (b, k) int64 and exact similarities (b, k) float64.
    """
    similarity = block @ reference_t
    longest = float(np.sqrt(max(np.einsum("ij,ij->i", grid, grid).max() for grid in (block_grid, reference_grid))))
    # Twice the bound is enough (a top-k entry errs down by at most one bound, the k-th float32 value up by
    # at most one); a third covers the float32 rounding of the comparisons themselves (~6e-8 against ~2e-5).
    margin = 3.0 * float32_error(block.shape[1], longest * (1 + 1e-6) + 1e-6)
    # The k-th largest group maximum is at most the k-th largest entry: every entry within the
    # margin of the latter is among these.
    rows, columns = _candidates(similarity, k, margin)
    values = similarity[rows, columns]
    _, top = _first_k(rows, columns, values, block.shape[0], k)
    near = values >= (top[:, -1] - margin)[rows]
    rows, columns = rows[near], columns[near]
    exact = np.einsum("ij,ij->i", block_grid[rows], reference_grid[columns])
    return _first_k(rows, columns, exact, block.shape[0], k)


def cosine_knn(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows by cosine distance, itself first: the same bits on every CPU.

    vectors: ndarray of shape (n, dim) of any lengths, 1 <= k <= n. Returns the rows, ndarray of
    shape (n, k) int32, and the cosine distances, ndarray of shape (n, k) float32 (0 to itself).
    Each row is divided by its norm (summed in a fixed order) and put on the grid, so the
    similarities are exact dot products (:func:`nearest_exact`) and every later step is
    IEEE-rounded element-wise arithmetic: no BLAS kernel, block shape or CPU changes a bit. (A
    float32 product, as scikit-learn's brute-force search computes it, gave distances up to 4e-7
    apart under OpenBLAS's AVX2 and AVX-512 kernels, and UMAP's layout of the seed papers, so
    their topics, followed: 10 instead of 11.)
    After itself, equal similarities go to the lower row. Rows are compared in blocks of
    ``BLOCK_ELEMENTS`` similarities, so memory stays bounded at any size.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.sqrt(row_sums(vectors * vectors))  # a fixed order of IEEE-rounded steps: any length, every CPU
    unit = on_grid(vectors / np.where(norms > 0, norms, 1.0)[:, None])
    unit32 = unit.astype(np.float32)  # multiples of 2^-24 below 1 in magnitude: float32 holds them exactly
    unit32_t = np.ascontiguousarray(unit32.T)
    # Blocks of rows against all of them (BLOCK_ELEMENTS similarities at once): exact, so any block gives the same bits.
    block = max(1, BLOCK_ELEMENTS // max(len(unit), 1))
    found = [
        nearest_exact(unit32[start : start + block], unit32_t, unit[start : start + block], unit, k)
        for start in range(0, max(len(unit), 1), block)
    ]
    rows, similarity = np.concatenate([part[0] for part in found]), np.concatenate([part[1] for part in found])
    # Itself first (a duplicate, or a near one whose norm rounds larger, can score as high), the rest in order.
    me = np.arange(len(rows))[:, None]
    missing = ~(rows == me).any(axis=1)
    rows[missing] = np.hstack([me[missing], rows[missing, :-1]])
    similarity[missing] = np.hstack([np.ones((int(missing.sum()), 1)), similarity[missing, :-1]])
    order = np.argsort(rows != me, axis=1, kind="stable")
    rows, similarity = np.take_along_axis(rows, order, axis=1), np.take_along_axis(similarity, order, axis=1)
    distances = np.clip(1.0 - similarity, 0.0, 2.0)
    distances[:, 0] = 0.0
    return rows.astype(np.int32), distances.astype(np.float32)
