"""The sampled fit of cluster.method "leiden": a sample drawn by the papers' ids, not by the seed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cluster.keyed import keyed_sample
from pipeline.cluster.sample_fit import (
    AUTO_FIT_SAMPLE,
    LEIDEN_FIT_SAMPLE,
    fit_on_sample,
    fit_rows,
    fit_sample_size,
)
from pipeline.config import ClusterConfig
from pipeline.engine import LocalEngine


def test_auto_fit_sample_of_leiden_is_every_paper_up_to_its_limit_then_that_many():
    assert fit_sample_size(7_701, "auto", "leiden") == 7_701  # the small corpora measured keep their full fit
    assert fit_sample_size(74_728, "auto", "leiden") == LEIDEN_FIT_SAMPLE < 74_728
    assert fit_sample_size(74_728, "auto") == 74_728 <= AUTO_FIT_SAMPLE  # the default method's is unchanged
    assert fit_sample_size(74_728, 30_000, "leiden") == 30_000
    assert fit_sample_size(74_728, "all", "leiden") == 74_728


def test_a_keyed_sample_is_the_same_papers_in_any_order():
    keys = [f"2501.{index:05d}" for index in range(5_000)]
    chosen = {keys[row] for row in keyed_sample(keys, 500)}
    order = np.random.default_rng(3).permutation(len(keys))
    shuffled = [keys[row] for row in order]
    rows = keyed_sample(shuffled, 500)
    assert len(chosen) == 500 and {shuffled[row] for row in rows} == chosen
    assert np.all(np.diff(rows) > 0)  # ascending, in corpus order


def test_a_keyed_sample_spreads_over_the_corpus():
    keys = [f"paper-{index}" for index in range(10_000)]
    rows = keyed_sample(keys, 1_000)
    per_tenth = np.bincount(rows // 1_000, minlength=10)
    assert per_tenth.min() >= 70 and per_tenth.max() <= 130  # not the first rows, nor one stretch of them
    assert len(keyed_sample(keys[:300], 1_000)) == 300


def test_the_leiden_sample_does_not_depend_on_the_seed_but_the_default_methods_does():
    vectors = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    keys = [f"id{index}" for index in range(400)]
    assert np.array_equal(fit_rows(vectors, 100, True, 1, keys), fit_rows(vectors, 100, True, 2, keys))
    assert np.array_equal(fit_rows(vectors, 100, True, 1), fit_rows(vectors, 100, True, 2))  # keyed by the vectors
    assert not np.array_equal(fit_rows(vectors, 100, False, 1), fit_rows(vectors, 100, False, 2))
    # Keyed by the ids, a change in the vectors (another CPU's last bits) draws the same papers.
    noisy = vectors + np.float32(1e-4)
    assert np.array_equal(fit_rows(vectors, 100, True, 1, keys), fit_rows(noisy, 100, True, 1, keys))


def test_a_sampled_leiden_fit_gives_every_seed_the_same_topics_on_clear_groups():
    pytest.importorskip("igraph")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 32))
    points = np.repeat(centres, 80, axis=0) + 0.6 * rng.normal(size=(480, 32))
    vectors = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    keys = [f"p{index}" for index in range(480)]
    config = ClusterConfig(method="leiden", leiden_members=5, leiden_resolution=1.0, fit_sample=200)
    first, second = (fit_on_sample(vectors, config, seed, LocalEngine(), None, keys=keys) for seed in (1, 2))
    assert np.array_equal(first.labels, second.labels)
    assert "keyed sample of 200 of 480" in first.notes[-1]
