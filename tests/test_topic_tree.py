"""Topic hierarchy, coarse groups, target topic counts and outlier reassignment."""

from __future__ import annotations

import numpy as np

from pipeline.label import reassign_outliers
from pipeline.label.geometry import auto_coarse_groups, cut_tree, hierarchy_table, linkage_matrix, merge_to_target


def two_families() -> tuple[list[int], np.ndarray]:
    """Four topics: 0 and 1 are near each other, 2 and 3 are near each other, far from 0/1."""
    centroids = np.array([[1.0, 0.1, 0, 0], [1.0, -0.1, 0, 0], [0, 0, 1.0, 0.1], [0, 0, 1.0, -0.1]])
    return [0, 1, 2, 3], centroids


def test_hierarchy_merges_near_topics_first_and_ends_at_the_root():
    topic_ids, centroids = two_families()
    table = hierarchy_table(topic_ids, linkage_matrix(centroids), lambda leaves: "+".join(map(str, leaves)))
    assert len(table) == 3
    first_two = {tuple(row) for row in table["topics"].iloc[:2]}
    assert first_two == {(0, 1), (2, 3)}
    root = table.iloc[-1]
    assert list(root["topics"]) == [0, 1, 2, 3] and root["parent_name"] == "0+1+2+3"
    assert set(table["parent_id"]) == {4, 5, 6}  # inner ids count up from max(topic) + 1
    assert table["distance"].is_monotonic_increasing


def test_cut_tree_groups_families_and_keeps_ids_stable():
    topic_ids, centroids = two_families()
    groups = cut_tree(topic_ids, linkage_matrix(centroids), 2)
    assert groups[0] == groups[1] != groups[2] == groups[3]
    assert cut_tree(topic_ids, linkage_matrix(centroids), 9) == {0: 0, 1: 1, 2: 2, 3: 3}
    assert [auto_coarse_groups(n) for n in (1, 9, 50, 100)] == [1, 3, 7, 10]


def test_merge_to_target_merges_similar_clusters_and_keeps_outliers():
    rng = np.random.default_rng(0)
    topic_ids, centroids = two_families()
    labels = np.repeat(topic_ids, 5)
    embeddings = centroids[labels] + 0.01 * rng.normal(size=(20, 4))
    labels = labels.copy()
    labels[0] = -1
    merged, note = merge_to_target(labels, embeddings, 2)
    assert merged[0] == -1
    assert len(set(merged.tolist()) - {-1}) == 2
    assert len(set(merged[1:10].tolist())) == 1 and merged[1] != merged[10]
    assert "merged" in note
    same, note = merge_to_target(labels, embeddings, 10)
    assert (same == labels).all() and "never split" in note


def test_outliers_join_a_near_topic_but_not_a_far_one():
    rng = np.random.default_rng(1)
    topic = np.array([1.0, 0.0, 0.0])
    members = topic + 0.05 * rng.normal(size=(20, 3))
    near = np.array([[1.0, 0.02, 0.0]])
    far = np.array([[0.0, 0.0, 1.0]])
    embeddings = np.concatenate([members, near, far])
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = np.array([0] * 20 + [-1, -1])
    relabelled, note = reassign_outliers(labels, embeddings, percentile=5.0)
    assert relabelled[20] == 0 and relabelled[21] == -1
    assert "1 of 2 outliers" in note
    untouched, _ = reassign_outliers(labels, embeddings, percentile=0.0)
    assert untouched[21] == -1
