"""The label stage's update path: this run's topics matched to the last run's, then labelled from its sums.

Plain data in and out. :func:`matched` matches this run's clusters to the last run's topics and
says what stops an update from sums (None when nothing does); :func:`relabelled` then gives
the same tables the full path gives after ``stable_ids`` (assignments, topics, hierarchy under
stable ids, the feed artifacts) and the sums the next run starts from. See
``pipeline.feed.label_update`` for the sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.feed.identity import PreviousTopics, StableTopics
from pipeline.feed.label_step import FeedKeys, feed_files
from pipeline.feed.label_update import LabelState, grown_state, state_audit, state_keywords
from pipeline.schema import OUTLIER_NAME, OUTLIER_TOPIC

if TYPE_CHECKING:
    from pipeline.config import LabelConfig


# The outliers' row when the last run had none (its other columns come from this run's papers).
OUTLIER_ROW = {"name": OUTLIER_NAME, "slug": "outliers", "coarse_topic": OUTLIER_TOPIC, "coarse_name": OUTLIER_NAME,
               "name_faults": ""}  # fmt: skip


@dataclass(frozen=True)
class Updated:
    """The label stage's tables from the update path, and the state it leaves for the next run."""

    assignments: pd.DataFrame
    topics: pd.DataFrame
    hierarchy: pd.DataFrame
    feed_outputs: dict[str, bytes]
    notes: list[str]
    state: LabelState


@dataclass(frozen=True)
class Prior:
    """What the last run left that an update from sums starts from: its sums and its topic tables."""

    state: LabelState
    topics: pd.DataFrame
    hierarchy: pd.DataFrame


@dataclass(frozen=True)
class Matched:
    """This run's clusters matched to the last run's topics; ``blocker``: why no update from sums (None: none).

    labels: merged clusters per paper; local: them renumbered by size; topic_of: each paper's
    stable id (empty when blocked before the match); row_of_state: each of the state's papers'
    row in this run.
    """

    blocker: str | None
    notes: list[str]
    local_centroids: dict[int, np.ndarray]
    stable: StableTopics | None
    topic_of: np.ndarray
    row_of_state: np.ndarray


def blocked(reason: str) -> Matched:
    """A match that never ran: ``reason`` blocks the update from sums."""
    return Matched(reason, [], {}, None, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def matched(
    prior: Prior,
    previous: PreviousTopics,
    paper_ids: list[str],
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    config: LabelConfig,
    kept: np.ndarray | None = None,
) -> Matched:
    """This run's topics under stable ids, and what stops an update from ``prior`` (a paper gone, a topic born...)."""
    from pipeline.feed.identity import stable_topics
    from pipeline.label import merged_clusters
    from pipeline.label.geometry import centroids_of
    from pipeline.label.keywords import renumber_by_size

    state = prior.state
    row_of_state = pd.Index(paper_ids).get_indexer(pd.Index(state.paper_ids))
    if (row_of_state < 0).any():
        return blocked(f"{int((row_of_state < 0).sum())} papers of the last run are gone")
    if not np.array_equal(np.asarray(text_keys, dtype="S16")[row_of_state], state.text_keys):
        return blocked("papers of the last run have another title or abstract")

    labels, notes = merged_clusters(cluster_labels, embeddings, config, kept)
    local = renumber_by_size(labels)
    local_centroids = centroids_of(embeddings, local)
    stable = stable_topics(paper_ids, local, local_centroids, previous)
    events = stable.history.loc[stable.history["run"] == stable.run, "event"]
    if events.isin(["born", "faded", "merged", "split"]).any():
        changes = events[events.isin(["born", "faded", "merged", "split"])].value_counts()
        return blocked("topics changed: " + ", ".join(f"{n} {event}" for event, n in sorted(changes.items())))
    topic_of = np.array([stable.ids[int(k)] for k in local.tolist()], dtype=np.int64)
    if not set(topic_of[topic_of >= 0].tolist()) <= set(stable.names) & set(prior.topics["topic"].tolist()):
        return blocked("a topic has no name kept from the last run")
    return Matched(None, notes, local_centroids, stable, topic_of, row_of_state)


def relabelled(
    match: Matched,
    prior: Prior,
    previous: PreviousTopics,
    feed: dict[str, Any] | None,
    keys: FeedKeys,
    papers: pd.DataFrame,
    text_keys: list[bytes],
    embeddings: np.ndarray,
    layout: np.ndarray,
    config: LabelConfig,
) -> Updated:
    """The label tables of an update from the last run's sums (``match``: unblocked, from :func:`matched`)."""
    from pipeline.label import phrase_tokens, term_counts_for
    from pipeline.label.geometry import assignments_table, best_papers, intertopic_positions, paper_scores
    from pipeline.schema import paper_texts
    from pipeline.terms import tokenize_texts

    if match.blocker is not None or match.stable is None:
        raise ValueError(f"no update from the last run's sums: {match.blocker}")
    state, stable, topic_of, local_centroids = prior.state, match.stable, match.topic_of, match.local_centroids
    old_topics, hierarchy = prior.topics, prior.hierarchy
    old_by_topic = old_topics.set_index("topic")
    paper_ids = papers["paper_id"].astype(str).tolist()
    notes = list(match.notes)

    before = np.full(len(paper_ids), OUTLIER_TOPIC - 1, dtype=np.int64)
    before[match.row_of_state] = state.topics
    changed = np.flatnonzero(before != topic_of)
    texts = paper_texts(papers.iloc[changed])
    changed_counts = term_counts_for(tokenize_texts(texts), config)
    rows = papers.iloc[changed]
    changed_tokens = phrase_tokens(rows["title"].astype(str).tolist(), rows["abstract"].astype(str).tolist())
    grown = grown_state(state, paper_ids, text_keys, topic_of, changed, changed_counts, changed_tokens)
    keywords, audit = state_keywords(grown, config), state_audit(grown)

    centroids = {stable.ids[k]: centroid for k, centroid in local_centroids.items()}
    scores = paper_scores(embeddings, topic_of, centroids)
    positions = intertopic_positions(centroids)
    topic_rows = []
    for topic in sorted(set(topic_of.tolist())):
        members = np.flatnonzero(topic_of == topic)
        # Only the outliers may have no row from the last run (the check above): they come and go freely.
        old = old_by_topic.loc[topic].to_dict() if topic in old_by_topic.index else OUTLIER_ROW
        x, y = positions.get(topic, (np.nan, np.nan))
        coverage, lift = audit.get(topic, (np.nan, np.nan))
        topic_rows.append(
            {
                **old,
                "topic": topic,
                "name": stable.names.get(topic, old["name"]),
                "size": len(members),
                "keywords": [word for word, _ in keywords.get(topic, [])],
                "keyword_weights": [float(weight) for _, weight in keywords.get(topic, [])],
                "representative_ids": best_papers(papers["paper_id"], members, scores),
                "x": float(x),
                "y": float(y),
                "name_coverage": coverage,
                "name_lift": lift,
            }
        )
    topics = pd.DataFrame(topic_rows, columns=list(old_topics.columns))
    topics = topics.assign(_real=topics["topic"] != OUTLIER_TOPIC, _size=-topics["size"])
    topics = topics.sort_values(["_real", "_size", "topic"], kind="stable").drop(columns=["_real", "_size"])
    assignments = assignments_table(papers["paper_id"], topic_of, scores, layout)
    name_of = dict(zip(topics["topic"].tolist(), topics["name"].tolist(), strict=True))
    registry = stable.registry.assign(
        name=[name_of.get(t, n) for t, n in zip(stable.registry["topic"], stable.registry["name"], strict=True)]
    )
    outputs = feed_files(keys, previous, feed, papers, stable, registry)
    notes += [f"labelled from the last run's sums: {len(changed)} papers new or in another topic", *stable.notes]
    return Updated(assignments, topics.reset_index(drop=True), hierarchy, outputs, notes, grown)
