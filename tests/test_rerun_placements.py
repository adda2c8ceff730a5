"""A rerun on the same clusters places every paper as the run before: kept placements move no topic."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig
from pipeline.feed.identity import PreviousTopics
from pipeline.feed.label_step import keep_placements
from pipeline.label import merged_clusters


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three clusters of unit vectors and, between and around them, papers HDBSCAN left out (-1)."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 16))
    members = [centres[k] + rng.normal(scale=0.35, size=(40, 16)) for k in range(3)]
    mixes = rng.dirichlet(np.ones(3), size=90) @ centres + rng.normal(scale=0.2, size=(90, 16))
    vectors = np.concatenate([*members, mixes])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.concatenate([np.repeat(np.arange(3), 40), np.full(90, -1)])
    return vectors.astype(np.float32), labels


def _previous(paper_ids: list[str], topics: np.ndarray) -> PreviousTopics:
    assignments = pd.DataFrame({"paper_id": paper_ids, "topic": topics})
    return PreviousTopics(assignments, pd.DataFrame(), pd.DataFrame(), 1, True, True)


def test_reruns_on_the_same_clusters_place_every_paper_as_the_first_run():
    embeddings, clusters = _blobs()
    paper_ids = [f"p{row}" for row in range(len(clusters))]
    config = LabelConfig(outlier_percentile=20.0)
    first, _ = merged_clusters(clusters, embeddings, config)
    placed = (clusters < 0) & (first >= 0)
    assert 0 < placed.sum() < (clusters < 0).sum()  # some outliers joined a topic, some stay out
    topics = first
    for rerun in range(3):  # each rerun starts from the last run's placements
        labels, kept, note = keep_placements(clusters, paper_ids, _previous(paper_ids, topics))
        assert note is not None and kept.sum() == placed.sum()
        if rerun == 0:  # kept papers counted as cluster members move centroids and bars: other outliers move
            assert not np.array_equal(merged_clusters(labels, embeddings, config)[0], first)
        topics, _ = merged_clusters(labels, embeddings, config, kept)
        np.testing.assert_array_equal(topics, first)
