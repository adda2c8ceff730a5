"""Topics described from a sample of their papers, for piles too large to read whole (``label.fit_sample``).

The label stage's full path reads every paper's words: a document-term matrix with bigrams, a
phrase index of every word, and names ranked over both. At 250,000 papers that took 234 s
and 11.1 GB, and a million papers were killed for memory (docs/scale.md). As the cluster
stage fits on a sample and assigns the rest, the label stage then reads a seeded sample of
each topic's papers:

- every topic keeps its papers (the clusters, merged and with outliers placed, come from all
  papers first), its size, its centroid and its papers' scores, and its best papers are
  ranked among all of them;
- keywords, names, the topic tree, the name audit and the metrics come from the sample:
  each topic contributes in proportion to its size, and at least ``MIN_PER_TOPIC`` papers
  (all of a smaller topic's), so a small topic is described by enough of its papers.

Up to ``AUTO_LABEL_SAMPLE`` papers ("auto"), every paper is read, as before.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from pipeline.label.geometry import (
    assignments_table,
    best_papers,
    centroids_of,
    intertopic_positions,
    paper_scores,
)

# Papers read to describe the topics when label.fit_sample is "auto": all of them up to this
# many, this many above it (the cluster stage's fit sample is the same size). The label stage
# took 64 s at 74,728 papers and 234 s at 250,000 (docs/scale.md), so a sample of 100,000
# bounds it near 90 s whatever the pile.
AUTO_LABEL_SAMPLE = 100_000
# A topic contributes at least this many papers to the sample (all of its papers when fewer).
MIN_PER_TOPIC = 200
LabelSample = int | Literal["auto", "all"]


def label_sample_size(n_papers: int, setting: LabelSample) -> int:
    """How many of ``n_papers`` describe the topics: "auto" = all up to AUTO_LABEL_SAMPLE, "all", or a number."""
    if setting == "all":
        return n_papers
    if setting == "auto":
        return min(n_papers, AUTO_LABEL_SAMPLE)
    return min(n_papers, int(setting))


def stratified_rows(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """About ``size`` rows (sorted): each label's share of them, at least MIN_PER_TOPIC or all of its rows."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == label)
        quota = max(min(len(rows), MIN_PER_TOPIC), round(size * len(rows) / len(labels)))
        chosen.append(rows if quota >= len(rows) else rng.choice(rows, size=quota, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def expanded(
    sample_topics: pd.DataFrame,
    sample_hierarchy: pd.DataFrame,
    sample_local: np.ndarray,
    sample_labels: np.ndarray,
    labels: np.ndarray,
    papers: pd.DataFrame,
    embeddings: np.ndarray,
    layout: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The label tables of all papers from those of a sample.

    ``sample_local``: each sampled paper's topic in the sample's tables; ``sample_labels``: its
    cluster label; ``labels``: every paper's cluster label (merged, outliers placed). Topics are
    numbered by their size among all papers (0 = largest), as the full path numbers them.
    """
    from pipeline.label.keywords import renumber_by_size

    local = renumber_by_size(labels)
    full_of_label = dict(zip(labels.tolist(), local.tolist(), strict=True))
    pairs = set(zip(sample_local.tolist(), sample_labels.tolist(), strict=True))
    full_of = {int(sample): full_of_label[label] for sample, label in pairs}
    if len(full_of) != len(pairs) or len(set(full_of.values())) != len(full_of):
        raise RuntimeError("the sample's topics do not match the clusters one to one")
    centroids = centroids_of(embeddings, local)
    scores = paper_scores(embeddings, local, centroids)
    positions = intertopic_positions(centroids)
    rows = []
    for row in sample_topics.to_dict("records"):
        topic = full_of[int(row["topic"])]
        members = np.flatnonzero(local == topic)
        x, y = positions.get(topic, (np.nan, np.nan))
        rows.append(row | {"topic": topic, "size": len(members), "x": float(x), "y": float(y),
                           "representative_ids": best_papers(papers["paper_id"], members, scores)})  # fmt: skip
    topics = pd.DataFrame(rows, columns=list(sample_topics.columns)).sort_values("topic", kind="stable")
    hierarchy = sample_hierarchy
    if len(hierarchy):
        first_inner = max(full_of.values()) + 1  # the same count of topics: inner nodes keep their ids

        def node(value: int) -> int:
            return full_of[value] if value < first_inner else value

        hierarchy = hierarchy.assign(
            child_left_id=hierarchy["child_left_id"].map(node),
            child_right_id=hierarchy["child_right_id"].map(node),
            topics=[sorted(full_of[int(leaf)] for leaf in leaves) for leaves in hierarchy["topics"]],
        )
    return assignments_table(papers["paper_id"], local, scores, layout), topics.reset_index(drop=True), hierarchy
