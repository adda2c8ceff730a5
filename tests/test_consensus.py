"""Leiden consensus clustering (cluster.method "leiden"): topics that do not hinge on the seed or on tiny changes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from pipeline.cluster import consensus
from pipeline.cluster.consensus import (
    OUTLIER,
    coassociation,
    consensus_labels,
    exact_neighbours,
    graph_edges,
    leiden_consensus,
    leiden_members,
    leiden_partitions,
    leiden_resolution,
    member_seeds,
    neighbour_share,
    starting_membership,
    without_loose_papers,
)
from pipeline.cluster.fit import cluster_papers
from pipeline.config import ClusterConfig, ConfigError, parse_config

pytest.importorskip("igraph")


def overlapping_blobs(spread: float, n_per_blob: int = 60, n_blobs: int = 8, dim: int = 32, seed: int = 0):
    """Unit vectors around ``n_blobs`` random directions; at a spread of 1.6 the groups touch."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim))
    points = np.concatenate([centre + spread * rng.normal(size=(n_per_blob, dim)) for centre in centres])
    truth = np.repeat(np.arange(n_blobs), n_per_blob)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), truth


def perturbed(vectors: np.ndarray, sigma: float = 1e-4, seed: int = 9) -> np.ndarray:
    noisy = vectors + np.random.default_rng(seed).normal(0, sigma, vectors.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def test_exact_neighbours_are_the_brute_force_ones_self_first_and_block_independent(monkeypatch):
    vectors, _ = overlapping_blobs(1.0, n_per_blob=25, n_blobs=4)
    vectors = np.vstack([vectors, vectors[:3]])  # duplicates: a paper must still come first in its own row
    indices, distances = exact_neighbours(vectors, 6)
    assert indices.shape == (103, 6) and (indices[:, 0] == np.arange(103)).all()
    assert (distances[:, 0] == 0).all() and (np.diff(distances, axis=1) >= -1e-7).all()
    similarity = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    kth = np.sort(similarity, axis=1)[:, -6]
    found = np.take_along_axis(similarity, indices.astype(np.int64), axis=1)
    assert (found >= kth[:, None] - 1e-6).all()  # every neighbour found is among the 6 nearest
    monkeypatch.setattr(consensus, "BLOCK_ELEMENTS", 7 * 103)  # blocks of 7 papers
    blocked = exact_neighbours(vectors, 6)
    assert np.array_equal(blocked[0], indices) and np.array_equal(blocked[1], distances)


def test_coassociation_counts_the_partitions_that_join_each_edge_and_outliers_join_nothing():
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    partitions = [np.array([0, 0, 1, 1]), np.array([5, 5, 5, 5]), np.array([OUTLIER, OUTLIER, 2, 2])]
    assert coassociation(edges, partitions).tolist() == pytest.approx([2 / 3, 1 / 3, 1.0, 1 / 3])


def test_consensus_labels_are_components_of_kept_edges_numbered_by_their_first_paper():
    edges = np.array([[0, 4], [4, 5], [1, 2], [2, 3], [3, 6], [5, 7]])
    together = np.array([1.0, 0.9, 0.6, 1.0, 0.5, 0.2])  # 0.5 is not more than half: (3, 6) is cut
    labels = consensus_labels(8, edges, together, min_cluster_size=3)
    assert labels.tolist() == [0, 1, 1, 1, 0, 0, OUTLIER, OUTLIER]
    assert consensus_labels(8, edges, together, min_cluster_size=4).tolist() == [OUTLIER] * 8


def test_neighbour_share_counts_the_nearest_papers_in_the_same_topic_leaving_the_paper_itself_out():
    labels = np.array([0, 0, 0, 1, 1, 1, OUTLIER])
    indices = np.array(
        [[0, 1, 3], [1, 0, 2], [2, 3, 4], [3, 4, 5], [4, 0, 1], [5, 6, 0], [6, 6, 6]]
    )  # the last one: an outlier's own row
    assert neighbour_share(labels, indices).tolist() == [0.5, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_a_paper_of_a_topic_smaller_than_its_neighbourhood_can_have_all_its_fellows_near():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    # k = 6 (5 others): topic 0 has only 2 other papers, so 2 of them near is all it could have.
    indices = np.array([[i, *[j for j in range(9) if j != i][:5]] for i in range(9)])
    share = neighbour_share(labels, indices)
    assert share[:3].tolist() == [1.0, 1.0, 1.0]  # not 2/5: small topics are not loose for being small
    assert share[3:].tolist() == [0.4] * 6  # topic 1's papers have 5 others: 2 of their 5 nearest, out of 5


def test_loose_papers_become_outliers_and_clusters_left_too_small_go_with_them():
    labels = np.array([2, 2, 2, 0, 0, OUTLIER, 0, 2, 5, 5, 5])
    share = np.array([1.0, 1.0, 0.2, 1.0, 0.39, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # Paper 2 (0.2) leaves cluster 2, which keeps 3 papers; paper 4 (0.39) leaves cluster 0, which falls to 2.
    kept = without_loose_papers(labels, share, 0.4, min_cluster_size=3)
    assert kept.tolist() == [0, 0, OUTLIER, OUTLIER, OUTLIER, OUTLIER, OUTLIER, 0, 1, 1, 1]
    assert without_loose_papers(labels, share, 0.0, 1).tolist() == [0, 0, 0, 1, 1, OUTLIER, 1, 0, 2, 2, 2]


def test_where_groups_touch_the_papers_with_few_neighbours_in_their_topic_become_outliers():
    vectors, truth = overlapping_blobs(1.6)
    knn = exact_neighbours(vectors, 15)
    plain, _ = leiden_consensus(vectors, knn, 1, 10, 1.0, 5)
    share = neighbour_share(plain, knn[0])
    assert (plain != OUTLIER).all() and (share < 0.4).any()  # loose papers that the plain consensus keeps
    labels, _ = leiden_consensus(vectors, knn, 1, 10, 1.0, 5, least_share=0.4)
    assert np.array_equal(labels, without_loose_papers(plain, share, 0.4, 5))
    assert 0 < (labels == OUTLIER).mean() < 0.5
    # The papers left are the clearer ones: they agree with the true groups better than all did.
    members = labels != OUTLIER
    assert adjusted_rand_score(truth[members], labels[members]) > adjusted_rand_score(truth, plain)


def test_auto_resolution_is_held_outside_the_sizes_measured_and_falls_with_log_papers_between():
    (small, high, _), (large, low, _) = consensus.AUTO_SETTINGS
    assert high > low
    assert leiden_resolution(64, "auto") == leiden_resolution(small, "auto") == high
    assert leiden_resolution(large, "auto") == leiden_resolution(75_000, "auto") == low
    between = [leiden_resolution(n, "auto") for n in (small + 100, 3_000, 4_000, 6_000, large - 100)]
    assert all(high > a > b > low for a, b in itertools.pairwise(between))
    middle = round((small * large) ** 0.5)  # halfway in log(papers)
    assert leiden_resolution(middle, "auto") == pytest.approx((high + low) / 2, abs=1e-3)
    assert leiden_resolution(2_000, 1.5) == 1.5


def test_auto_members_are_held_outside_the_sizes_measured_and_grow_with_log_papers_between():
    (small, _, few), (large, _, many) = consensus.AUTO_SETTINGS
    assert few < many
    assert leiden_members(64, "auto") == leiden_members(small, "auto") == few
    assert leiden_members(large, "auto") == leiden_members(74_728, "auto") == many
    between = [leiden_members(n, "auto") for n in (small + 100, 3_000, 4_000, 6_000, large - 100)]
    assert all(isinstance(m, int) for m in between)
    assert all(few <= a <= b <= many for a, b in itertools.pairwise(between)) and between[0] < between[-1]
    middle = round((small * large) ** 0.5)  # halfway in log(papers)
    assert leiden_members(middle, "auto") == round((few + many) / 2)
    assert leiden_members(7_701, 30) == 30


def test_the_stage_uses_the_auto_members_of_its_size_and_writes_them():
    vectors, _ = overlapping_blobs(1.0)
    result = cluster_papers(vectors, ClusterConfig(method="leiden", leiden_resolution=1.0), seed=1)
    assert result.params["leiden_members"] == leiden_members(len(vectors), "auto")


def test_member_seeds_are_distinct_and_differ_between_runs():
    assert len(set(member_seeds(1, 20))) == 20
    assert not set(member_seeds(1, 20)) & set(member_seeds(2, 20))


def test_single_partitions_hinge_on_the_seed_but_the_consensus_does_not():
    vectors, truth = overlapping_blobs(1.6)
    knn = exact_neighbours(vectors, 15)
    edges, weights = graph_edges(vectors, *knn)
    singles = leiden_partitions(len(vectors), edges, weights, 1.0, [1, 2, 3, 4, 5])
    assert min(adjusted_rand_score(singles[0], other) for other in singles[1:]) < 0.97  # the seed matters here
    results = [leiden_consensus(vectors, knn, seed, 30, 1.0, 5)[0] for seed in (1, 2, 3, 4, 5)]
    pairs = [adjusted_rand_score(a, b) for i, a in enumerate(results) for b in results[i + 1 :]]
    assert min(pairs) >= 0.97
    assert adjusted_rand_score(truth, results[0]) >= 0.8


def test_the_consensus_moves_little_when_every_vector_moves_by_1e4():
    vectors, _ = overlapping_blobs(1.6)
    first, _ = leiden_consensus(vectors, exact_neighbours(vectors, 15), 1, 30, 1.0, 5)
    noisy = perturbed(vectors)
    second, _ = leiden_consensus(noisy, exact_neighbours(noisy, 15), 1, 30, 1.0, 5)
    assert adjusted_rand_score(first, second) >= 0.95


def test_repeated_runs_give_the_same_bytes():
    vectors, _ = overlapping_blobs(1.3)
    config = ClusterConfig(method="leiden", leiden_members=5)
    first, second = cluster_papers(vectors, config, seed=4), cluster_papers(vectors, config, seed=4)
    assert first.labels.tobytes() == second.labels.tobytes()
    assert first.layout.tobytes() == second.layout.tobytes()


def test_the_cluster_stage_finds_the_groups_and_says_how():
    vectors, truth = overlapping_blobs(1.0)
    result = cluster_papers(vectors, ClusterConfig(method="leiden", leiden_members=5, leiden_resolution=1.0), seed=1)
    assert adjusted_rand_score(truth, result.labels) >= 0.95
    assert result.params["method"] == "leiden-consensus"
    assert result.params["leiden_members"] == 5 and result.params["leiden_resolution"] == 1.0
    assert 1 <= result.params["consensus_rounds"] <= consensus.CONSENSUS_ROUNDS
    assert result.params["least_neighbour_share"] == consensus.LEAST_NEIGHBOUR_SHARE
    assert result.layout.shape == (480, 2) and np.array_equal(result.reduced, result.layout)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "louvain"}, "method"),
        ({"leiden_members": 0}, "leiden_members"),
        ({"leiden_members": "many"}, "leiden_members"),
        ({"leiden_resolution": -1}, "leiden_resolution"),
    ],
)
def test_bad_consensus_settings_are_one_clear_config_error(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"name": "x", "inputs": [{"path": "x.csv"}], "cluster": change})


def test_a_guide_becomes_a_starting_partition_with_each_unguided_paper_alone():
    assert starting_membership(np.array([3, -1, 3, 7, -1])).tolist() == [0, 2, 0, 1, 3]


def test_the_sampled_fit_places_every_other_paper_in_a_consensus_topic():
    from pipeline.cluster.sample_fit import fit_on_sample
    from pipeline.engine import LocalEngine

    vectors, truth = overlapping_blobs(1.0)
    config = ClusterConfig(method="leiden", leiden_members=5, leiden_resolution=1.0, fit_sample=240)
    result = fit_on_sample(vectors, config, 1, LocalEngine(), None)
    assert result.labels.shape == (480,) and result.layout.shape == (480, 2) and result.reduced.shape == (480, 2)
    assert result.params["fit_sample"] == 240 and result.params["method"] == "leiden-consensus"
    assert adjusted_rand_score(truth, result.labels) >= 0.9
