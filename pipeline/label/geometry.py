"""Where topics sit: outlier reassignment, centroids, paper scores, map positions and the topic tree.

Papers are ranked within their topic by cosine similarity to the topic's centroid (the
mean of its unit embeddings, made unit). Topics are merged by Ward linkage on their
centroids (BERTopic's ``hierarchical_topics`` does the same on c-TF-IDF rows; centroids of
the paper embeddings are denser and do not depend on the vocabulary); a group of topics is
named by the caller (``pipeline.label.names``), so parents get names like their children.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig
from pipeline.schema import HIERARCHY_COLUMNS, OUTLIER_TOPIC

GroupNamer = Callable[[list[int]], str]  # leaf topic ids -> a name for the group


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (a zero vector stays zero)."""
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def centroids_of(embeddings: np.ndarray, topics_per_paper: np.ndarray) -> dict[int, np.ndarray]:
    """Each real topic's unit centroid; embeddings: (n_papers, dim), topics_per_paper: (n_papers,)."""
    return {
        topic: unit(embeddings[topics_per_paper == topic].mean(axis=0))
        for topic in sorted(set(topics_per_paper.tolist()))
        if topic != OUTLIER_TOPIC
    }


def reassign_outliers(
    labels: np.ndarray, embeddings: np.ndarray, percentile: float, placed: np.ndarray | None = None
) -> tuple[np.ndarray, str | None]:
    """Give each outlier (but those ``placed`` elsewhere, bool per paper) to its nearest topic when it is close enough.

    "Close enough": its cosine to the topic's centroid is at least that of the topic's own
    `percentile`% least typical papers. The bar is set per topic by the topic itself, so it
    needs no tuning per corpus or embedding model, and a paper far from every topic stays -1.
    labels: ndarray (n_papers,); embeddings: ndarray (n_papers, dim), unit rows.
    """
    free = labels == OUTLIER_TOPIC
    if placed is not None:
        free &= ~placed
    outliers = np.flatnonzero(free)
    cluster_ids = sorted(set(labels.tolist()) - {OUTLIER_TOPIC})
    if outliers.size == 0 or not cluster_ids:
        return labels, None
    centroids, bars = centroid_bars(labels, embeddings, cluster_ids, percentile)
    similarity = embeddings[outliers] @ centroids.T
    nearest = similarity.argmax(axis=1)
    accepted = similarity[np.arange(outliers.size), nearest] >= bars[nearest]
    relabelled = labels.copy()
    relabelled[outliers[accepted]] = np.asarray(cluster_ids)[nearest[accepted]]
    note = (
        f"{int(accepted.sum())} of {outliers.size} outliers joined their nearest topic "
        f"(at least as close as its {percentile:g}% least typical papers); {int((~accepted).sum())} stay unassigned"
    )
    return relabelled, note


def centroid_bars(
    labels: np.ndarray, embeddings: np.ndarray, cluster_ids: list[int], percentile: float
) -> tuple[np.ndarray, np.ndarray]:
    """The unit centroids (n_clusters, dim) of ``cluster_ids`` and each one's bar to join it.

    A paper is close enough to join a cluster when its cosine to the centroid is at least
    that of the cluster's own ``percentile``% least typical papers (used for outliers here
    and for new papers by ``pipeline.feed.update``).
    """
    centroids = np.stack([unit(embeddings[labels == cluster].mean(axis=0)) for cluster in cluster_ids])
    bars = np.array(
        [np.percentile(embeddings[labels == cluster] @ centroid, percentile) for cluster, centroid in zip(
            cluster_ids, centroids, strict=True)]
    )  # fmt: skip
    return centroids, bars


def best_papers(paper_ids: pd.Series, members: np.ndarray, scores: np.ndarray, n: int = 10) -> list[str]:
    """The ids of the ``n`` best of a topic's papers (rows ``members``): highest score first, ties by input order."""
    ranked = members[np.lexsort((members, -scores[members]))]
    return paper_ids.iloc[ranked[:n]].tolist()


def assignments_table(
    paper_ids: pd.Series, topic_per_paper: np.ndarray, scores: np.ndarray, layout: np.ndarray
) -> pd.DataFrame:
    """The assignments table (``schema.ASSIGNMENT_COLUMNS``): each paper's topic, score and map position."""
    return pd.DataFrame(
        {
            "paper_id": paper_ids.astype("string"),
            "topic": topic_per_paper.astype(np.int64),
            "score": scores.astype(np.float64),
            "x": layout[:, 0].astype(np.float64),
            "y": layout[:, 1].astype(np.float64),
        }
    )


def paper_scores(embeddings: np.ndarray, topics: np.ndarray, centroids: dict[int, np.ndarray]) -> np.ndarray:
    """Cosine of each paper to its topic's centroid; an outlier gets its best cosine to any topic."""
    scores = np.zeros(len(topics), dtype=np.float64)
    if not centroids:
        return scores
    ids = list(centroids)
    similarity = embeddings @ np.stack([centroids[topic] for topic in ids]).T
    column = {topic: index for index, topic in enumerate(ids)}
    for row, topic in enumerate(topics.tolist()):
        scores[row] = similarity[row].max() if topic == OUTLIER_TOPIC else similarity[row, column[topic]]
    return np.round(scores, 6)  # rounded so that CSVs are byte-identical across machines


def intertopic_positions(centroids: dict[int, np.ndarray]) -> dict[int, tuple[float, float]]:
    """2-D positions of topics from a PCA of their centroids: close topics sit close."""
    ids = sorted(centroids)
    if len(ids) == 0:
        return {}
    if len(ids) == 1:
        return {ids[0]: (0.0, 0.0)}
    matrix = np.stack([centroids[topic] for topic in ids])
    centred = matrix - matrix.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((len(ids), 2))
    width = min(2, len(singular))
    coords[:, :width] = left[:, :width] * singular[:width]
    coords *= np.where(coords[np.abs(coords).argmax(axis=0), range(2)] < 0, -1, 1)  # stable orientation
    return {topic: (float(round(x, 6)), float(round(y, 6))) for topic, (x, y) in zip(ids, coords, strict=True)}


def topic_tree(
    topic_ids: list[int], centroids: dict[int, np.ndarray], config: LabelConfig, name_group: GroupNamer
) -> tuple[pd.DataFrame, dict[int, int]]:
    """The merge table of the topics and each topic's group at the coarse level."""
    if len(topic_ids) < 2:
        return hierarchy_table(topic_ids, np.zeros((0, 4)), name_group), dict.fromkeys(topic_ids, 0)
    linkage = linkage_matrix(np.stack([centroids[topic] for topic in topic_ids]))
    n_groups = auto_coarse_groups(len(topic_ids)) if config.coarse_topics == "auto" else config.coarse_topics
    return hierarchy_table(topic_ids, linkage, name_group), cut_tree(topic_ids, linkage, n_groups)


def linkage_matrix(centroids: np.ndarray) -> np.ndarray:
    """Ward linkage of topic centroids, ndarray (n_topics, dim) -> scipy linkage (n_topics - 1, 4)."""
    from scipy.cluster import hierarchy

    return hierarchy.linkage(centroids.astype(np.float64), method="ward", optimal_ordering=True)


def hierarchy_table(topic_ids: list[int], linkage: np.ndarray, name_group: GroupNamer) -> pd.DataFrame:
    """One row per merge, in BERTopic's hierarchical_topics layout (see pipeline.schema).

    ``topic_ids[i]`` is the topic of linkage leaf i; inner nodes get ids from max(topic) + 1.
    """
    if len(topic_ids) < 2:
        return hierarchy_frame([])
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
    return hierarchy_frame(rows)


def hierarchy_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The topic tree's table of its merge rows (``hierarchy_table``); with none, its empty columns."""
    if not rows:
        return pd.DataFrame({column: [] for column in HIERARCHY_COLUMNS})
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
    centroids = np.stack([unit(embeddings[labels == cluster].mean(axis=0)) for cluster in cluster_ids])
    groups = cut_tree(cluster_ids, linkage_matrix(centroids), target)
    merged = np.array([groups[int(label)] if label != -1 else -1 for label in labels], dtype=np.int64)
    return merged, f"{len(cluster_ids)} topics merged along the topic tree into {target}"
