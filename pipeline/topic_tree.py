"""The hierarchy of topics: which topics merge first, a coarse level, and a target topic count.

Topics are merged by Ward linkage on their centroid embeddings (BERTopic's
``hierarchical_topics`` does the same on c-TF-IDF rows; centroids of the paper embeddings
are denser and do not depend on the vocabulary). A merged group is named from the summed
c-TF-IDF of its leaves, so parents get names like their children.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline.schema import HIERARCHY_COLUMNS

GroupNamer = Callable[[list[int]], str]  # leaf topic ids -> a name for the group


def linkage_matrix(centroids: np.ndarray) -> np.ndarray:
    """Ward linkage of topic centroids, ndarray (n_topics, dim) -> scipy linkage (n_topics - 1, 4)."""
    from scipy.cluster import hierarchy

    return hierarchy.linkage(centroids.astype(np.float64), method="ward", optimal_ordering=True)


def hierarchy_table(topic_ids: list[int], linkage: np.ndarray, name_group: GroupNamer) -> pd.DataFrame:
    """One row per merge, in BERTopic's hierarchical_topics layout (see pipeline.schema).

    ``topic_ids[i]`` is the topic of linkage leaf i; inner nodes get ids from max(topic) + 1.
    """
    if len(topic_ids) < 2:
        return pd.DataFrame({column: [] for column in HIERARCHY_COLUMNS})
    first_inner = max(topic_ids) + 1
    leaves_of: dict[int, list[int]] = {index: [topic] for index, topic in enumerate(topic_ids)}
    node_id = {index: topic for index, topic in enumerate(topic_ids)}
    rows = []
    for step, (left, right, distance, _count) in enumerate(linkage):
        left, right = int(left), int(right)
        merged = len(topic_ids) + step
        leaves_of[merged] = sorted(leaves_of[left] + leaves_of[right])
        node_id[merged] = first_inner + step
        rows.append(
            {
                "parent_id": node_id[merged],
                "parent_name": name_group(leaves_of[merged]),
                "child_left_id": node_id[left],
                "child_right_id": node_id[right],
                "distance": round(float(distance), 6),
                "topics": leaves_of[merged],
            }
        )
    return pd.DataFrame(rows, columns=list(HIERARCHY_COLUMNS))


def auto_coarse_groups(n_topics: int) -> int:
    """About the square root of the topic count: 9 topics -> 3 groups, 50 -> 7, 100 -> 10."""
    return max(1, min(n_topics, round(math.sqrt(n_topics))))


def cut_tree(topic_ids: list[int], linkage: np.ndarray, n_groups: int) -> dict[int, int]:
    """Each topic's group when the tree is cut into `n_groups`; group 0 holds the most topics."""
    if len(topic_ids) < 2 or n_groups >= len(topic_ids):
        return {topic: index for index, topic in enumerate(topic_ids)}
    from scipy.cluster import hierarchy

    raw = hierarchy.fcluster(linkage, t=max(1, n_groups), criterion="maxclust")
    # Renumber so that ids do not depend on scipy's arbitrary cluster numbering.
    order = sorted(set(raw.tolist()), key=lambda g: (-int((raw == g).sum()), min(np.flatnonzero(raw == g))))
    renumber = {group: index for index, group in enumerate(order)}
    return {topic: renumber[int(group)] for topic, group in zip(topic_ids, raw, strict=True)}


def merge_to_target(labels: np.ndarray, embeddings: np.ndarray, target: int) -> tuple[np.ndarray, str | None]:
    """Merge clusters along the hierarchy until at most `target` remain; -1 stays -1.

    labels: ndarray (n_papers,); embeddings: ndarray (n_papers, dim). Returns the new labels
    and a note (None when nothing had to change).
    """
    cluster_ids = sorted(set(labels.tolist()) - {-1})
    if len(cluster_ids) <= target:
        note = None
        if len(cluster_ids) < target:
            note = f"{len(cluster_ids)} topics found, fewer than the {target} asked for: a topic is never split"
        return labels, note
    centroids = np.stack([_unit(embeddings[labels == cluster].mean(axis=0)) for cluster in cluster_ids])
    groups = cut_tree(cluster_ids, linkage_matrix(centroids), target)
    merged = np.array([groups[int(label)] if label != -1 else -1 for label in labels], dtype=np.int64)
    return merged, f"{len(cluster_ids)} topics merged along the topic tree into {target}"


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector
