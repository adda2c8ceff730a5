"""The label stage's part in following a feed: the last run's topics in, this run's feed files out.

Plain data in and out: the label stage reads what the last successful run carried (the run's
history, checked when the run started) and hands it to :func:`previous_topics`; once its
topics are named it calls :func:`stable_ids`, which matches them (``pipeline.feed.identity``)
and returns the renumbered tables and three more artifacts:

    topics_registry.parquet  every topic id ever given (see identity.REGISTRY_COLUMNS)
    topic_history.parquet    the events of every run (see identity.HISTORY_COLUMNS)
    feed.json                one entry per run: its number, papers, new papers, newest date,
                             and the ids of the papers new in this run
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pipeline.feed.identity import PreviousTopics, StableTopics, apply_stable_ids, stable_topics
from pipeline.files import json_to_bytes, table_to_bytes

FEED_OUTPUTS = ("topics_registry.parquet", "topic_history.parquet", "feed.json")
# What the label stage carries to the next run (``Stage.carries``): the feed's files, and the
# tables an update starts from.
LABEL_CARRIED = ("assignments.parquet", "topics.parquet", "hierarchy.parquet", *FEED_OUTPUTS)
FEED_FORMAT = 1


@dataclass(frozen=True)
class FeedKeys:
    """What this run's topics are made with: a last run made otherwise keeps its ids but not its names.

    model: the embedding model's identity (``pipeline.embed.model_identity``); naming: the hash
    of the label settings and the label code (the label stage computes it).
    """

    model: str
    naming: str


def previous_topics(
    feed: dict[str, Any],
    assignments: pd.DataFrame,
    registry: pd.DataFrame,
    history: pd.DataFrame,
    keys: FeedKeys,
) -> PreviousTopics | None:
    """The last run's topics from the files its label stage carried; None when its feed has another format.

    feed: its ``feed.json``; assignments, registry, history: its tables of those names.
    """
    if feed.get("format") != FEED_FORMAT:
        return None
    return PreviousTopics(
        assignments=assignments[["paper_id", "topic"]],
        registry=registry,
        history=history,
        run=int(feed["runs"][-1]["run"]),
        same_model=feed.get("model") == keys.model,
        same_names=feed.get("naming") == keys.naming,
    )


def keep_placements(
    cluster_labels: np.ndarray,
    paper_ids: list[str],
    previous: PreviousTopics | None,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Cluster labels where a paper HDBSCAN left out (-1) stays in the topic it was placed in last run.

    The label stage gives outliers to their nearest topic under a bar (``reassign_outliers``);
    as centroids move a little with each update, a paper near two topics or near the bar
    would otherwise change topic from run to run. Such a paper keeps its previous topic when
    that topic's papers still mostly form one topic of this run: it gets the label of the
    cluster of that topic holding most of them. Measured on arxiv-daily-cs (model2vec, 50k
    papers): without this, about 1-1.7% of the placed papers changed topic per one-day update,
    nearly all of them outliers given to a topic.

    groups: each paper's topic once the clusters are merged to the topic count
    (``pipeline.label.merged_to_target``); None when no cluster is merged. A topic made of
    merged clusters holds its papers although none of its clusters holds most of them.

    Returns the labels, which papers kept a placement (bool per paper: ``merged_clusters``
    lets them move no centroid, bar or merge, so a rerun on the same clusters places every
    paper as the run before), and a note (None when none did).
    """
    none = np.zeros(len(cluster_labels), dtype=bool)
    if previous is None:
        return cluster_labels, none, None
    groups = cluster_labels if groups is None else np.asarray(groups)
    old_of = dict(zip(previous.assignments["paper_id"].tolist(), previous.assignments["topic"].tolist(), strict=True))
    old = np.array([old_of.get(paper, -2) for paper in paper_ids], dtype=np.int64)
    clustered = (cluster_labels >= 0) & (old >= 0)
    pairs = pd.DataFrame({"old": old[clustered], "group": groups[clustered], "cluster": cluster_labels[clustered]})
    totals = pairs["old"].value_counts()
    in_group = pairs[["old", "group"]].value_counts()
    majority = {old_topic: group for (old_topic, group), n in in_group.items() if 2 * n > totals[old_topic]}
    # The cluster of that group holding most of the topic's papers (ties: the smallest label).
    inside = pairs[pairs["old"].map(majority).eq(pairs["group"])]
    counts = inside[["old", "cluster"]].value_counts().reset_index(name="n")
    counts = counts.sort_values(["old", "n", "cluster"], ascending=[True, False, True]).drop_duplicates("old")
    cluster_of = {int(row.old): int(row.cluster) for row in counts.itertuples()}
    stay = np.flatnonzero((cluster_labels < 0) & (old >= 0))
    kept = [row for row in stay.tolist() if int(old[row]) in cluster_of]
    if not kept:
        return cluster_labels, none, None
    labels, placed = cluster_labels.copy(), none.copy()
    labels[kept], placed[kept] = [cluster_of[int(old[row])] for row in kept], True
    return labels, placed, f"{len(kept)} papers HDBSCAN left out stay in the topic they were placed in by the last run"


def newest_date(dates: pd.Series) -> str:
    """The latest full ISO date ("YYYY-MM-DD") among ``dates``, "" when none is one."""
    full = dates[dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)]
    return str(full.max()) if len(full) else ""


def stable_ids(
    keys: FeedKeys,
    previous: PreviousTopics | None,
    feed: dict[str, Any] | None,
    papers: pd.DataFrame,
    embeddings: np.ndarray,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    hierarchy: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, bytes], list[str]]:
    """The label tables under stable topic ids, the feed artifacts, and notes for the log."""
    from pipeline.label.geometry import centroids_of

    local = assignments["topic"].to_numpy(dtype=np.int64)
    paper_ids = papers["paper_id"].astype(str).tolist()
    stable = stable_topics(paper_ids, local, centroids_of(embeddings, local), previous)
    assignments, topics, hierarchy, registry = apply_stable_ids(stable, assignments, topics, hierarchy)
    return assignments, topics, hierarchy, feed_files(keys, previous, feed, papers, stable, registry), stable.notes


def feed_files(
    keys: FeedKeys,
    previous: PreviousTopics | None,
    feed: dict[str, Any] | None,
    papers: pd.DataFrame,
    stable: StableTopics,
    registry: pd.DataFrame,
) -> dict[str, bytes]:
    """The feed artifacts of a run whose topics got the stable ids of ``stable`` (``registry``: named)."""
    paper_ids = papers["paper_id"].astype(str).tolist()
    known = set(previous.assignments["paper_id"].tolist()) if previous is not None else set()
    new_papers = [paper for paper in paper_ids if paper not in known]
    runs = list(feed["runs"]) if feed is not None else []
    runs.append(
        {
            "run": stable.run,
            "papers": len(paper_ids),
            "new_papers": len(new_papers),
            "topics": int(registry["alive"].sum()),
            "newest_date": newest_date(papers["date"].astype(str)),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    feed_json = {
        "format": FEED_FORMAT,
        "model": keys.model,
        "naming": keys.naming,
        "runs": runs,
        "new_paper_ids": new_papers,
    }
    return {
        "topics_registry.parquet": table_to_bytes(registry),
        "topic_history.parquet": table_to_bytes(stable.history),
        "feed.json": json_to_bytes(feed_json),
    }
