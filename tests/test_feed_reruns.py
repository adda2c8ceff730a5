"""A rerun with no new papers moves nothing, whatever made the topics: an update's pool, a split, a recluster.

A feed built from synthetic blobs goes through the feed's own functions, as the cluster and
label stages call them: ``update_clusters`` (the cluster stage's update), then
``keep_placements``, ``merged_clusters`` and ``stable_topics`` (the label stage's topics under
stable ids). The 24-page replay in test_feed_rules.py checks the same through whole runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.cluster.fit import ClusterResult
from pipeline.config import LabelConfig
from pipeline.feed.identity import PreviousTopics, stable_topics
from pipeline.feed.label_step import keep_placements
from pipeline.feed.update import drifted, update_clusters
from pipeline.label import merged_clusters, merged_to_target
from pipeline.label.geometry import centroids_of
from pipeline.label.keywords import renumber_by_size
from tests.test_feed import blobs, unit_rows

PARAMS = {"min_cluster_size": 5, "min_samples": 3, "n_neighbors": 5}
CONFIG = LabelConfig(outlier_percentile=20.0)


def labelled(
    paper_ids: list[str],
    clusters: np.ndarray,
    embeddings: np.ndarray,
    previous: PreviousTopics | None,
    config: LabelConfig = CONFIG,
):
    """The label stage's topics of a clustering: each paper's stable topic, and what the next run starts from."""
    groups = merged_to_target(clusters, embeddings, config)[0]
    labels, kept, _ = keep_placements(clusters, paper_ids, previous, groups)
    local = renumber_by_size(merged_clusters(labels, embeddings, config, kept)[0])
    stable = stable_topics(paper_ids, local, centroids_of(embeddings, local), previous)
    topics = np.array([stable.ids[int(k)] for k in local.tolist()], dtype=np.int64)
    assignments = pd.DataFrame({"paper_id": paper_ids, "topic": topics})
    return topics, PreviousTopics(assignments, stable.registry, stable.history, stable.run, True, True)


def rerun_moves_nothing(
    result: ClusterResult, pool: np.ndarray, embeddings: np.ndarray, topics, previous, config: LabelConfig = CONFIG
) -> None:
    """The cluster stage's update with no new papers, then the label stage: every paper keeps its topic, no event."""
    paper_ids = previous.assignments["paper_id"].tolist()
    rerun = update_clusters(result, pool, embeddings, np.arange(len(embeddings)), 5.0, base_papers=len(embeddings))
    assert rerun.born == 0 and rerun.joined == 0
    np.testing.assert_array_equal(rerun.result.labels, result.labels)
    np.testing.assert_array_equal(rerun.pool, pool)
    again, after = labelled(paper_ids, rerun.result.labels, embeddings, previous, config)
    np.testing.assert_array_equal(again, topics)
    assert after.history[after.history["run"] == previous.run + 1].empty


def with_outliers(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    """``count`` papers HDBSCAN left out, around the ``centres``: some close enough to a topic to join it, some not."""
    nearest = centres[rng.integers(len(centres), size=count)]
    spread = rng.uniform(0.06, 0.16, size=(count, 1))
    return unit_rows(nearest + spread * rng.standard_normal((count, centres.shape[1])))


def test_an_update_run_again_with_no_new_papers_changes_nothing():
    """The update of an update's own result with no new papers is that result: no topic is born from its pool.

    The pool is clustered among an even sample of the clustered papers, and the papers that
    joined in the update make the sample sparser (every 2nd of 1,008 instead of all 999):
    judged again, a group the update found shared with clustered papers became a topic.
    """
    # The last clustering: topics 0 and 1, five of topic 1's papers off on a subject of their own.
    old = np.vstack([blobs([0, 1], [600, 394]), blobs([5], [5], seed=1)])
    labels = np.repeat([0, 1], [600, 399])
    previous = ClusterResult(labels, old[:, :5].astype(np.float32), old[:, :2].astype(np.float32), PARAMS)
    # The update: 10 papers like topic 0's, and 5 beside topic 1's stray papers, which wait in the pool.
    embeddings = np.vstack([old, blobs([0], [10], seed=2), blobs([5], [5], seed=3)])
    update = update_clusters(previous, np.zeros(999, dtype=bool), embeddings, np.arange(999), 5.0, base_papers=999)
    assert update.joined >= 5 and update.pool[-5:].all()
    rerun = update_clusters(update.result, update.pool, embeddings, np.arange(1014), 5.0, base_papers=999)
    assert rerun.born == 0 and rerun.joined == 0
    np.testing.assert_array_equal(rerun.result.labels, update.result.labels)
    np.testing.assert_array_equal(rerun.pool, update.pool)
    np.testing.assert_array_equal(rerun.result.layout, update.result.layout)
    assert drifted(rerun, 999, max_growth=0.25, max_drift=0.15, min_growth=1) is None


def test_a_topic_an_update_made_from_the_pool_keeps_its_papers_on_a_rerun():
    """A pool-born topic, with outliers the label stage gave it, survives a rerun's update and labels whole."""
    rng = np.random.default_rng(11)
    # The first clustering: topics 0 and 1, outliers around them, and 3 papers on a subject too few for a topic.
    old = np.vstack([blobs([0, 1], [40, 40], seed=4), with_outliers(rng, np.eye(24)[[0, 1]], 20), blobs([7], [3])])
    clusters = np.concatenate([np.repeat([0, 1], 40), np.full(23, -1)])
    paper_ids = [f"p{row}" for row in range(len(old))]
    topics, previous = labelled(paper_ids, clusters, old, None)
    assert (topics[-3:] == -1).all()
    first = ClusterResult(clusters, old[:, :5].astype(np.float32), old[:, :2].astype(np.float32), PARAMS)
    # The update: 12 papers on that subject fit no topic, and the pool makes them one.
    embeddings = np.vstack([old, blobs([7], [12], seed=5)])
    update = update_clusters(first, np.zeros(len(old), dtype=bool), embeddings, np.arange(len(old)), 5.0, len(old))
    assert update.born == 1 and (update.result.labels[-12:] == 2).all()
    paper_ids += [f"n{row}" for row in range(12)]
    topics, previous = labelled(paper_ids, update.result.labels, embeddings, previous)
    born = previous.history[(previous.history["run"] == 2) & (previous.history["event"] == "born")]
    assert born["topic"].tolist() == [topics[-1]]
    assert (topics[-12:] == topics[-1]).all()
    joined = len(old) - 3 + np.flatnonzero(topics[-15:-12] == topics[-1])  # old outliers the label stage gave it
    assert len(joined) >= 2
    kept = keep_placements(update.result.labels, paper_ids, previous)[1]
    assert kept[joined].all()  # the rerun's label stage keeps them there
    rerun_moves_nothing(update.result, update.pool, embeddings, topics, previous)


def test_a_topic_born_from_a_split_at_a_recluster_keeps_its_papers_on_a_rerun():
    """A recluster splits a topic in two (a split in the history); a rerun with no new papers moves nothing."""
    rng = np.random.default_rng(12)
    centres = unit_rows(np.eye(24)[[0, 0, 1]] + np.eye(24)[[2, 3, 4]] * 0.6)  # the first two are close
    sizes = (35, 25, 30)
    halves = np.vstack([c + 0.08 * rng.standard_normal((n, 24)) for c, n in zip(centres, sizes, strict=True)])
    embeddings = np.vstack([unit_rows(halves), with_outliers(rng, centres, 45)])
    paper_ids = [f"p{row}" for row in range(len(embeddings))]
    outliers = np.full(45, -1)
    # Run 1: the first two halves form one cluster; run 2, a recluster of the same papers, tells them apart.
    one = np.concatenate([np.repeat([0, 0, 1], sizes), outliers])
    two = np.concatenate([np.repeat([0, 1, 2], sizes), outliers])
    _, previous = labelled(paper_ids, one, embeddings, None)
    assert keep_placements(two, paper_ids, previous)[1].sum() >= 5  # outliers placed in run 1 keep their topic
    topics, previous = labelled(paper_ids, two, embeddings, previous)
    events = previous.history.loc[previous.history["run"] == 2, "event"].tolist()
    assert "split" in events and "born" in events
    result = ClusterResult(two, embeddings[:, :5].astype(np.float32), embeddings[:, :2].astype(np.float32), PARAMS)
    rerun_moves_nothing(result, np.zeros(len(embeddings), dtype=bool), embeddings, topics, previous)


def test_a_topic_made_of_merged_clusters_keeps_its_papers_on_a_rerun():
    """Clusters merged to ``label.n_topics``: a topic none of whose clusters holds most of its papers keeps them.

    Run 1 has three clusters and three topics; in run 2 a fourth subject arrives, so two close
    clusters of the same size merge into one topic. The outliers run 1 placed near them keep
    that topic in run 2, and must keep it on a rerun although neither cluster is a majority.
    """
    config = LabelConfig(outlier_percentile=20.0, n_topics=3)
    rng = np.random.default_rng(44)
    axes = np.eye(16)
    centres = np.stack([axes[0], axes[1], 0.8 * axes[1] + 0.6 * axes[2], axes[3]])  # the 2nd and 3rd merge
    clustered = [centre + 0.15 * rng.standard_normal((30, 16)) for centre in centres]
    around = [centre + 0.25 * rng.standard_normal((25, 16)) for centre in centres[1:3]]
    embeddings = unit_rows(np.vstack([*clustered, *around]))
    paper_ids = [f"p{row}" for row in range(len(embeddings))]
    first = np.r_[0:90, 120:170]  # the fourth subject's 30 papers come in run 2
    clusters = np.concatenate([np.repeat([0, 1, 2, 3], 30), np.full(50, -1)])
    _, previous = labelled([paper_ids[row] for row in first], clusters[first], embeddings[first], None, config)
    topics, previous = labelled(paper_ids, clusters, embeddings, previous, config)
    merged = topics[30]
    assert (topics[30:90] == merged).all() and len(set(topics[:120].tolist())) == 3
    kept = keep_placements(clusters, paper_ids, previous, merged_to_target(clusters, embeddings, config)[0])[1]
    assert ((topics == merged) & (clusters < 0)).sum() == kept.sum() > 0  # its placed outliers keep it
    result = ClusterResult(clusters, embeddings[:, :5].astype(np.float32), embeddings[:, :2].astype(np.float32), PARAMS)
    rerun_moves_nothing(result, np.zeros(len(embeddings), dtype=bool), embeddings, topics, previous, config)
