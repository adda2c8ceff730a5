"""The label stage's update path end to end: when it applies, and the label tables it gives.

:func:`updated_labels` returns the same tables the full path gives after ``stable_ids``
(assignments, topics, hierarchy under stable ids, the feed artifacts) or, when the update
path does not apply, the reason, which the stage writes in its notes before taking the full
path. See ``pipeline.feed.label_update`` for the sums it works from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.feed.identity import PreviousTopics
from pipeline.feed.label_step import feed_files
from pipeline.feed.label_update import (
    STATE_NAMESPACE,
    LabelState,
    LabelStateArrays,
    grown_state,
    state_audit,
    state_key,
    state_keywords,
)
from pipeline.schema import OUTLIER_NAME, OUTLIER_TOPIC

if TYPE_CHECKING:
    from pipeline.stage import StageContext


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


def _previous_table(context: StageContext, name: str) -> pd.DataFrame:
    """A table the last successful run's label stage carried (``context.state``)."""
    if context.state is None:
        raise KeyError(name)
    return context.state.read_table("label", name)


def updated_labels(
    context: StageContext,
    previous: PreviousTopics,
    feed: dict[str, Any] | None,
    papers: pd.DataFrame,
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    counts_settings: str,
) -> Updated | str:
    """The label tables of an update from the last run's state, or why the full path must run."""
    from pipeline.feed.identity import stable_topics
    from pipeline.label import merged_clusters, phrase_tokens, term_counts_for
    from pipeline.label.geometry import (
        assignments_table,
        best_papers,
        centroids_of,
        intertopic_positions,
        paper_scores,
    )
    from pipeline.label.keywords import renumber_by_size
    from pipeline.schema import paper_texts
    from pipeline.terms import tokenize_texts

    config = context.config.label
    if context.forced:
        return "the label stage was forced"
    if config.representation != "none":
        return f"keywords come from the {config.representation!r} representation"
    if not previous.same_names or context.state is None:
        return "the naming settings or code changed since the last run"
    key = state_key(context.state.digest("label", "assignments.parquet") or "", counts_settings)
    state = context.store.cache.get(STATE_NAMESPACE, key, LabelStateArrays())
    if state is None:
        return "the last run left no label state"
    try:
        old_topics, hierarchy = (
            _previous_table(context, "topics.parquet"),
            _previous_table(context, "hierarchy.parquet"),
        )
    except (OSError, KeyError, ValueError) as exc:
        return f"the last run's tables cannot be read ({exc})"
    paper_ids = papers["paper_id"].astype(str).tolist()
    row_of_state = pd.Index(paper_ids).get_indexer(pd.Index(state.paper_ids))
    if (row_of_state < 0).any():
        return f"{int((row_of_state < 0).sum())} papers of the last run are gone"
    if not np.array_equal(np.asarray(text_keys, dtype="S16")[row_of_state], state.text_keys):
        return "papers of the last run have another title or abstract"

    labels, notes = merged_clusters(cluster_labels, embeddings, config)
    local = renumber_by_size(labels)
    local_centroids = centroids_of(embeddings, local)
    stable = stable_topics(paper_ids, local, local_centroids, previous)
    events = stable.history.loc[stable.history["run"] == stable.run, "event"]
    if events.isin(["born", "faded", "merged", "split"]).any():
        changes = events[events.isin(["born", "faded", "merged", "split"])].value_counts()
        return "topics changed: " + ", ".join(f"{n} {event}" for event, n in sorted(changes.items()))
    topic_of = np.array([stable.ids[int(k)] for k in local.tolist()], dtype=np.int64)
    old_by_topic = old_topics.set_index("topic")
    if not set(topic_of[topic_of >= 0].tolist()) <= set(stable.names) & set(old_by_topic.index):
        return "a topic has no name kept from the last run"

    before = np.full(len(paper_ids), OUTLIER_TOPIC - 1, dtype=np.int64)
    before[row_of_state] = state.topics
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
    outputs = feed_files(context, previous, feed, papers, stable, registry)
    notes += [f"labelled from the last run's sums: {len(changed)} papers new or in another topic", *stable.notes]
    return Updated(assignments, topics.reset_index(drop=True), hierarchy, outputs, notes, grown)
