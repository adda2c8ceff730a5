"""New papers placed among clusters computed before, without rerunning UMAP or HDBSCAN.

Each new paper takes the similarity-weighted majority topic of its nearest old papers and the
weighted mean of their coordinates (exact similarities, ``pipeline.cluster.neighbours``).
``pipeline.feed.update`` builds a feed's update on :func:`extend_clusters`.
"""

from __future__ import annotations

import numpy as np

from pipeline.cluster.fit import ClusterResult
from pipeline.cluster.neighbours import BLOCK_ELEMENTS, nearest_exact, on_grid, row_sums, weighted_mean
from pipeline.config import DEFAULT_N_NEIGHBORS


def extend_clusters(
    previous: ClusterResult, old_embeddings: np.ndarray, new_embeddings: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place new papers among clusters computed before, without rerunning UMAP or HDBSCAN.

    Each new paper takes the similarity-weighted majority topic of its `n_neighbors` nearest
    old papers (cosine), and the similarity-weighted mean of their reduced and 2-D
    coordinates. old_embeddings: (n_old, dim) in the order of ``previous``; new_embeddings:
    (n_new, dim). Returns labels (n_new,), reduced (n_new, k) and layout (n_new, 2).
    """
    k = max(1, min(n_neighbors, old_embeddings.shape[0]))
    n_new = new_embeddings.shape[0]
    nearest = np.empty((n_new, k), dtype=np.int64)
    weights = np.empty((n_new, k), dtype=np.float64)
    block = max(1, BLOCK_ELEMENTS // max(1, old_embeddings.shape[0]))  # bounds the similarities held at once
    old = np.ascontiguousarray(old_embeddings, dtype=np.float32)
    old_grid, old_t = on_grid(old), np.ascontiguousarray(old.T)
    for start in range(0, n_new, block):
        # Exact similarities (pipeline.cluster.neighbours): a paper's neighbours do not depend on its block or the CPU.
        new = np.ascontiguousarray(new_embeddings[start : start + block], dtype=np.float32)
        found = nearest_exact(new, old_t, on_grid(new), old_grid, k)
        nearest[start : start + block], weights[start : start + block] = found
    weights = np.clip(weights, 1e-6, None)
    weights = weights / row_sums(weights)[:, None]
    labels = np.empty(new_embeddings.shape[0], dtype=np.int64)
    for row in range(new_embeddings.shape[0]):
        votes: dict[int, float] = {}
        for neighbour, weight in zip(previous.labels[nearest[row]].tolist(), weights[row].tolist(), strict=True):
            votes[neighbour] = votes.get(neighbour, 0.0) + weight
        labels[row] = max(sorted(votes), key=lambda label: votes[label])
    reduced = weighted_mean(weights, previous.reduced[nearest]).astype(np.float32)
    layout = weighted_mean(weights, previous.layout[nearest]).astype(np.float32)
    return labels, reduced, layout


def grow_clusters(previous: ClusterResult, embeddings: np.ndarray, old_rows: np.ndarray) -> ClusterResult:
    """``previous`` (the clusters of the papers at ``old_rows``, in that order) with every other paper added.

    embeddings: ndarray (n_papers, dim) of the whole corpus; the papers not in ``old_rows``
    join through :func:`extend_clusters`. Rows of the result follow ``embeddings``.
    """
    n_papers = embeddings.shape[0]
    new_rows = np.array(sorted(set(range(n_papers)) - set(old_rows.tolist())), dtype=np.int64)
    n_neighbors = int(previous.params.get("n_neighbors", DEFAULT_N_NEIGHBORS))
    new_labels, new_reduced, new_layout = extend_clusters(
        previous, embeddings[old_rows], embeddings[new_rows], n_neighbors
    )
    labels = np.empty(n_papers, dtype=np.int64)
    reduced = np.empty((n_papers, previous.reduced.shape[1]), dtype=np.float32)
    layout = np.empty((n_papers, 2), dtype=np.float32)
    labels[old_rows], labels[new_rows] = previous.labels, new_labels
    reduced[old_rows], reduced[new_rows] = previous.reduced, new_reduced
    layout[old_rows], layout[new_rows] = previous.layout, new_layout
    note = (
        f"incremental: {len(new_rows)} new papers joined the clusters of {len(old_rows)} papers through their "
        f"nearest neighbours (run with --force cluster to recluster everything)"
    )
    return ClusterResult(labels, reduced, layout, previous.params, [*previous.notes, note])
