"""The sampled fit: sample size, the seeded sample, and the assignment of the other papers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cluster.neighbours import grid_dot, nearest_columns, nearest_exact, on_grid
from pipeline.cluster.sample_fit import (
    ASSIGN_REFERENCE,
    AUTO_FIT_SAMPLE,
    assign_rest,
    choose_sample,
    fit_sample_size,
    rest_of,
    topic_bars,
)
from pipeline.engine import LocalEngine
from pipeline.label import reassign_outliers


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def blobs(rng: np.random.Generator, centres: np.ndarray, per_centre: int, spread: float) -> np.ndarray:
    return unit(
        np.repeat(centres, per_centre, axis=0) + rng.normal(0, spread, (len(centres) * per_centre, centres.shape[1]))
    )


def fringe(rng: np.random.Generator, dim: int, n: int) -> np.ndarray:
    """Papers on topic 0's edge, pulled towards dimension 5 by between 0.6 and 2.0."""
    pull = rng.uniform(0.6, 2.0, (n, 1))
    return unit(np.eye(dim)[[0]] * 4.0 + np.eye(dim)[[5]] * pull + rng.normal(0, 0.35, (n, dim)))


@pytest.fixture
def corpus():
    """Three tight topics on the sphere, each with its own 2-D island, and two groups of sample outliers.

    A loose cloud between topics 0 and 1, far out on the map at (30, 30), and a fringe on topic
    0's edge, HDBSCAN's noise around a dense group, at (5, -5).
    """
    rng = np.random.default_rng(7)
    dim = 24
    centres = np.eye(dim)[:3] * 4.0
    topics = blobs(rng, centres, 60, 0.35)
    islands = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    cloud = unit(
        np.eye(dim)[[0]] * 2.0 + np.eye(dim)[[1]] * 2.0 + np.eye(dim)[[6]] * 2.5 + rng.normal(0, 0.4, (40, dim))
    )
    sample = np.vstack([topics, cloud, fringe(rng, dim, 40)])
    labels = np.concatenate([np.repeat([0, 1, 2], 60), np.full(80, -1)])
    layout = np.vstack(
        [
            np.repeat(islands, 60, axis=0) + rng.normal(0, 0.5, (180, 2)),
            np.array([[30.0, 30.0]]) + rng.normal(0, 1.0, (40, 2)),
            np.array([[5.0, -5.0]]) + rng.normal(0, 0.5, (40, 2)),
        ]
    )
    return {"rng": rng, "centres": centres, "sample": sample, "labels": labels, "layout": layout, "islands": islands}


# ---- sample size and the sample ----


def test_fit_sample_size_auto_fits_all_papers_up_to_the_limit_then_caps():
    assert fit_sample_size(5_000, "auto") == 5_000
    assert fit_sample_size(AUTO_FIT_SAMPLE, "auto") == AUTO_FIT_SAMPLE
    assert fit_sample_size(3 * AUTO_FIT_SAMPLE, "auto") == AUTO_FIT_SAMPLE
    assert fit_sample_size(3 * AUTO_FIT_SAMPLE, "all") == 3 * AUTO_FIT_SAMPLE
    assert fit_sample_size(50_000, 20_000) == 20_000
    assert fit_sample_size(500, 20_000) == 500


@pytest.mark.parametrize("setting", [0, -5, "some", True, 2.5])
def test_fit_sample_size_rejects_what_is_no_size(setting):
    with pytest.raises(ValueError, match="fit_sample"):
        fit_sample_size(1000, setting)


def test_choose_sample_is_seeded_distinct_sorted_and_uniform():
    first = choose_sample(100_000, 20_000, seed=42)
    assert np.array_equal(first, choose_sample(100_000, 20_000, seed=42))
    assert not np.array_equal(first, choose_sample(100_000, 20_000, seed=43))
    assert len(first) == 20_000 and len(np.unique(first)) == 20_000
    assert np.all(np.diff(first) > 0) and first.min() >= 0 and first.max() < 100_000
    # Uniform over the corpus: each tenth of the rows holds about a tenth of the sample (not the first 20,000 rows).
    per_tenth = np.bincount(first // 10_000, minlength=10)
    assert per_tenth.min() > 1_800 and per_tenth.max() < 2_200
    assert np.array_equal(choose_sample(50, 80, seed=1), np.arange(50))


def test_rest_of_is_the_complement_in_order():
    sample = choose_sample(1000, 300, seed=3)
    rest = rest_of(1000, sample)
    assert len(rest) == 700 and np.all(np.diff(rest) > 0)
    assert np.array_equal(np.sort(np.concatenate([sample, rest])), np.arange(1000))


# ---- assignment ----


def test_papers_of_a_topic_join_it_and_land_on_its_island(corpus):
    rng = corpus["rng"]
    rest = blobs(rng, corpus["centres"], 30, 0.35)
    labels, positions = assign_rest(
        corpus["sample"], corpus["labels"], corpus["layout"], rest, k=10, outlier_percentile=5.0
    )
    expected = np.repeat([0, 1, 2], 30)
    assert (labels == expected).mean() > 0.95
    islands = corpus["islands"][expected]
    # Inside its own island (spread 0.5 around its centre), not between islands.
    assert np.median(np.linalg.norm(positions - islands, axis=1)) < 1.0
    assert positions.dtype == np.float32 and positions.shape == (90, 2)


def test_a_paper_among_sample_outliers_is_an_outlier_without_the_bar(corpus):
    rng = corpus["rng"]
    dim = corpus["sample"].shape[1]
    near_cloud = unit(
        np.eye(dim)[[0]] * 2.0 + np.eye(dim)[[1]] * 2.0 + np.eye(dim)[[6]] * 2.5 + rng.normal(0, 0.4, (20, dim))
    )
    labels, positions = assign_rest(
        corpus["sample"], corpus["labels"], corpus["layout"], near_cloud, k=10, outlier_percentile=None
    )
    assert (labels == -1).mean() > 0.9
    # An outlier's position comes from all its neighbours: the cloud's corner of the map.
    assert np.median(np.linalg.norm(positions[labels == -1] - [30.0, 30.0], axis=1)) < 3.0


def test_with_the_bar_outliers_join_a_topic_exactly_as_reassign_outliers_decides(corpus):
    """Papers whose neighbours are outliers get reassign_outliers' verdict, computed from the sample's topics."""
    rng = corpus["rng"]
    edge = fringe(rng, corpus["sample"].shape[1], 80)
    voted, _ = assign_rest(corpus["sample"], corpus["labels"], corpus["layout"], edge, k=10, outlier_percentile=None)
    labels, _ = assign_rest(corpus["sample"], corpus["labels"], corpus["layout"], edge, k=10, outlier_percentile=5.0)
    outliers = voted == -1
    assert outliers.sum() >= 20
    together = np.concatenate([corpus["labels"], np.full(len(edge), -1)])
    reference, _ = reassign_outliers(together, np.vstack([corpus["sample"], edge]), 5.0)
    assert np.array_equal(labels[outliers], reference[len(corpus["sample"]) :][outliers])
    assert 0 < (labels[outliers] == -1).sum() < outliers.sum()  # the bar let some in, not all
    assert set(labels[outliers].tolist()) == {-1, 0}
    assert np.array_equal(labels[~outliers], voted[~outliers])  # the bar never moves a paper a topic took


def test_a_paper_far_from_every_topic_is_an_outlier_whatever_its_neighbours_vote(corpus):
    dim = corpus["sample"].shape[1]
    far = unit(np.eye(dim)[[10, 11, 12]] + 0.01)
    for percentile in (5.0, None):
        labels, _ = assign_rest(
            corpus["sample"], corpus["labels"], corpus["layout"], far, k=10, outlier_percentile=percentile
        )
        assert labels.tolist() == [-1, -1, -1]


def test_topic_bars_match_reassign_outliers_percentile(corpus):
    bars = topic_bars(corpus["sample"], corpus["labels"], 5.0)
    assert bars.ids.tolist() == [0, 1, 2]
    members = corpus["sample"][corpus["labels"] == 1]
    cosines = members @ bars.centroids[1]
    assert np.isclose(bars.bars[1], np.percentile(cosines, 5.0)) and np.isclose(bars.floors[1], cosines.min())
    assert ((cosines < bars.bars[1]).mean()) == pytest.approx(0.05, abs=0.02)


def test_blocks_and_partitions_give_the_same_result_as_one_call(corpus):
    rng = corpus["rng"]
    rest = unit(rng.normal(0, 1, (203, corpus["sample"].shape[1])) + np.repeat(corpus["centres"], [70, 70, 63], axis=0))
    arguments = (corpus["sample"], corpus["labels"], corpus["layout"])
    whole = assign_rest(*arguments, rest, k=15, outlier_percentile=5.0)
    # Bit for bit on every CPU: the similarities are exact and the means summed in a fixed order
    # (pipeline.cluster.neighbours), so matrix products of other shapes taking other BLAS kernels change nothing.
    for block_rows in (1, 7, 16, 64):
        blocked = assign_rest(*arguments, rest, k=15, outlier_percentile=5.0, block_rows=block_rows)
        assert np.array_equal(whole[0], blocked[0]) and np.array_equal(whole[1], blocked[1])
    parts = np.array_split(np.arange(len(rest)), 5)
    mapped = LocalEngine().map(
        lambda rows: assign_rest(*arguments, rest[rows], k=15, outlier_percentile=5.0), parts, timeout_s=60
    )
    assert np.array_equal(np.concatenate([labels for labels, _ in mapped]), whole[0])
    assert np.array_equal(np.concatenate([coords for _, coords in mapped]), whole[1])


def test_any_coordinates_are_interpolated_and_k_is_capped_by_the_sample(corpus):
    rng = corpus["rng"]
    coords = np.hstack([corpus["layout"], rng.normal(size=(len(corpus["layout"]), 5))])
    rest = blobs(rng, corpus["centres"], 5, 0.35)
    labels, positions = assign_rest(corpus["sample"], corpus["labels"], coords, rest, k=10_000, outlier_percentile=5.0)
    assert positions.shape == (15, 7)
    # k larger than the sample: every sample paper votes; the weighted majority still picks the right topic.
    assert labels.tolist() == np.repeat([0, 1, 2], 5).tolist()


def test_an_exact_copy_of_a_sample_paper_takes_its_topic_when_its_neighbours_agree(corpus):
    copies = corpus["sample"][[0, 65, 130]]
    labels, positions = assign_rest(
        corpus["sample"], corpus["labels"], corpus["layout"], copies, k=5, outlier_percentile=5.0
    )
    assert labels.tolist() == [0, 1, 2]
    assert np.all(np.isfinite(positions))


def test_bad_shapes_are_errors(corpus):
    with pytest.raises(ValueError, match="empty"):
        assign_rest(np.zeros((0, 4), np.float32), np.zeros(0, int), np.zeros((0, 2)), np.zeros((3, 4)), 5, 5.0)
    with pytest.raises(ValueError, match="labels of shape"):
        assign_rest(corpus["sample"], corpus["labels"][:10], corpus["layout"], corpus["sample"][:3], 5, 5.0)
    with pytest.raises(ValueError, match="rest vectors"):
        assign_rest(corpus["sample"], corpus["labels"], corpus["layout"], np.zeros((3, 7), np.float32), 5, 5.0)


ASSIGN_SCRIPT = """
import hashlib, sys
import numpy as np
from pipeline.cluster.sample_fit import assign_rest
rng = np.random.default_rng(3)
def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
centres = rng.normal(0, 1, (6, 384)) * 3
sample = unit(centres[rng.integers(0, 6, 1500)] + rng.normal(0, 1, (1500, 384)))
labels = np.where(rng.random(1500) < 0.2, -1, np.argmax(sample @ centres.T, axis=1))
layout = rng.normal(0, 1, (1500, 7))
rest = unit(centres[rng.integers(0, 6, 700)] + rng.normal(0, 1, (700, 384)))
placed, positions = assign_rest(sample, labels, layout, rest, k=15, outlier_percentile=5.0, block_rows=int(sys.argv[1]))
print(hashlib.sha256(placed.tobytes() + positions.tobytes()).hexdigest())
"""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


@pytest.mark.slow
def test_the_assignment_is_the_same_bit_for_bit_with_every_blas_kernel_this_cpu_runs():
    """OpenBLAS picks its kernels by CPU; OPENBLAS_CORETYPE forces older ones (SSE3, AVX, AVX2).

    Before pipeline.cluster.neighbours, the AVX2 (Haswell) and SSE3 (Prescott) kernels gave other last bits
    than the AVX-512 ones for the same papers, so an AVX2-only machine got other map positions.
    """
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("OpenBLAS core types are named for x86-64 CPUs only")
    flags = cpu_flags()
    kernels = ["Prescott"] + (["Sandybridge"] if "avx" in flags else []) + (["Haswell"] if "avx2" in flags else [])
    digests = {}
    for kernel, block_rows in [("", 700), *((kernel, 32) for kernel in kernels)]:
        env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
        done = subprocess.run(
            [sys.executable, "-c", ASSIGN_SCRIPT, str(block_rows)], env=env, capture_output=True, text=True, check=True
        )
        digests[kernel or "native"] = done.stdout.split()[-1]
    assert len(set(digests.values())) == 1, digests


# ---- the top k and the reference cap ----


def brute_nearest(similarity: np.ndarray, k: int) -> np.ndarray:
    return np.array([sorted(range(len(row)), key=lambda column: (-row[column], column))[:k] for row in similarity])


@pytest.mark.parametrize(("n", "k"), [(1000, 15), (130, 15), (64, 64), (200, 1), (7, 3)])
def test_nearest_columns_are_the_exact_top_k_with_ties_to_the_lower_column(n, k):
    rng = np.random.default_rng(n + k)
    # Few distinct values: many ties, also across the k-th place.
    similarity = rng.integers(0, 12, (40, n)).astype(np.float32) / 12
    similarity[0] = 0.5  # a row of equals: the first k columns
    columns, values = nearest_columns(similarity, k)
    expected = brute_nearest(similarity, k)
    assert np.array_equal(columns, expected)
    assert np.array_equal(values, np.take_along_axis(similarity, expected, axis=1))
    assert columns[0].tolist() == list(range(k))


def test_nearest_exact_is_the_top_k_of_the_exact_similarities_even_among_near_ties():
    rng = np.random.default_rng(5)
    reference = unit(rng.normal(size=(300, 64)))
    # Rows a hair apart from each other: float32 products cannot order them, the exact ones do.
    reference[100:140] = unit(reference[[100]] + rng.normal(0, 1e-6, (40, 64)))
    block = unit(reference[[100, 100, 7]] + rng.normal(0, 1e-3, (3, 64)))
    block_grid, reference_grid = on_grid(block), on_grid(reference)
    columns, values = nearest_exact(block, np.ascontiguousarray(reference.T), block_grid, reference_grid, 12)
    expected_columns, expected_values = nearest_columns(grid_dot(block_grid, reference_grid.T), 12)
    assert np.array_equal(columns, expected_columns) and np.array_equal(values, expected_values)
    assert set(columns[0].tolist()) <= set(range(100, 140))


def test_nearest_columns_rejects_a_k_beyond_the_columns():
    with pytest.raises(ValueError, match="k must be"):
        nearest_columns(np.zeros((2, 5), np.float32), 6)


def test_the_reference_cap_limits_the_neighbours_to_a_seeded_sample_of_the_sample(corpus):
    sample, labels, layout = corpus["sample"], corpus["labels"], corpus["layout"]
    cap = 50
    reference = choose_sample(len(sample), cap, 11)
    outside = np.setdiff1d(np.arange(180), reference)  # topic members left out of the reference
    copies = sample[outside]
    _, positions = assign_rest(sample, labels, layout, copies, k=1, outlier_percentile=None, reference=cap, seed=11)
    # With k = 1 a paper lands on its nearest reference paper: never on its own copy outside the reference...
    nearest = reference[np.argmax(copies @ sample[reference].T, axis=1)]
    assert np.allclose(positions, layout[nearest].astype(np.float32))
    assert not np.any(np.all(np.isclose(positions, layout[outside].astype(np.float32)), axis=1))
    # ...and without the cap it lands on its copy.
    _, uncapped = assign_rest(sample, labels, layout, copies, k=1, outlier_percentile=None, reference=len(sample))
    assert np.allclose(uncapped, layout[outside].astype(np.float32))
    assert ASSIGN_REFERENCE == 20_000


def test_a_capped_reference_places_clear_members_in_their_topic_and_island(corpus):
    rng = corpus["rng"]
    rest = blobs(rng, corpus["centres"], 30, 0.35)
    truth = np.repeat([0, 1, 2], 30)
    arguments = (corpus["sample"], corpus["labels"], corpus["layout"])
    # Clear members: at least as close to their topic's centroid as its 5% least typical sample papers.
    bars = topic_bars(corpus["sample"], corpus["labels"], 5.0)
    clear = (rest @ bars.centroids.T)[np.arange(len(rest)), truth] >= bars.bars[truth]
    assert clear.sum() >= 80
    capped, capped_positions = assign_rest(*arguments, rest, k=5, outlier_percentile=5.0, reference=60, seed=3)
    assert np.array_equal(capped[clear], truth[clear])
    for topic in range(3):
        island = corpus["islands"][topic]
        assert np.linalg.norm(capped_positions[clear & (truth == topic)] - island, axis=1).max() < 3.0
    with pytest.raises(ValueError, match="reference"):
        assign_rest(*arguments, rest, k=10, outlier_percentile=5.0, reference=0)
