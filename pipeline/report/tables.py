"""The report's input tables checked and joined, and the small tables derived from them.

Everything here is pandas in, pandas (or plain Python) out: no HTML, no plotly. The
pages and figures are drawn from these results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.report.csv_export import check_slug
from pipeline.report.text import safe_url
from pipeline.report.timeline import pair_counts
from pipeline.schema import ASSIGNMENT_COLUMNS, OUTLIER_NAME, OUTLIER_TOPIC, PAPER_COLUMNS, TOPIC_COLUMNS

COARSE_COLUMNS = ("coarse_topic", "coarse_name")
NAME_AUDIT_COLUMNS = ("name_coverage", "name_lift", "name_rank")
# The label stage adds the coarse level and the name audit later than the rest; a topics table
# without them is still a valid input (the map then shows the topic names only, without coverage).
NAME_FAULTS_COLUMN = "name_faults"
REQUIRED_TOPIC_COLUMNS = tuple(
    c for c in TOPIC_COLUMNS if c not in (*COARSE_COLUMNS, *NAME_AUDIT_COLUMNS, NAME_FAULTS_COLUMN)
)
OTHER_SOURCES = "(other sources)"


def check_columns(table: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    """ValueError naming the table and the columns it lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"report: the {name} table lacks column(s) {', '.join(missing)}")


def prepare_topics(topics: pd.DataFrame, assignments: pd.DataFrame) -> pd.DataFrame:
    """``topics`` checked, sorted by topic, with an outlier row when papers are outliers.

    The label stage writes the -1 row itself; it is added here only if missing, because
    the outlier row carries no information of its own (no keywords, no position).
    Without ``coarse_topic``/``coarse_name`` every topic is its own coarse group.
    """
    check_columns(topics, REQUIRED_TOPIC_COLUMNS, "topics")
    check_columns(assignments, ASSIGNMENT_COLUMNS, "assignments")
    topics = topics.loc[:, [c for c in TOPIC_COLUMNS if c in topics.columns]].copy()
    topics["topic"] = topics["topic"].astype(int)
    if topics["topic"].duplicated().any():
        raise ValueError("report: the topics table lists a topic more than once")
    for topic, slug in zip(topics["topic"], topics["slug"], strict=True):
        if topic != OUTLIER_TOPIC:
            check_slug(int(topic), slug)
    n_outliers = int((assignments["topic"].astype(int) == OUTLIER_TOPIC).sum())
    if n_outliers and OUTLIER_TOPIC not in set(topics["topic"]):
        row = {
            "topic": OUTLIER_TOPIC,
            "name": OUTLIER_NAME,
            "slug": "outliers",
            "size": n_outliers,
            "keywords": [],
            "keyword_weights": [],
            "representative_ids": [],
            "x": float("nan"),
            "y": float("nan"),
        }
        topics = pd.concat([topics, pd.DataFrame([row])], ignore_index=True)
    for column in ("keywords", "keyword_weights", "representative_ids"):
        # Parquet gives list columns back as numpy arrays (or None); plain lists from here on.
        topics[column] = [[] if _missing(v) else list(v) for v in topics[column]]
    topics["name"] = ["" if _missing(v) else str(v) for v in topics["name"]]
    topics["size"] = topics["size"].astype(int)
    topics["x"] = pd.to_numeric(topics["x"], errors="coerce").astype(float)
    topics["y"] = pd.to_numeric(topics["y"], errors="coerce").astype(float)
    for column in NAME_AUDIT_COLUMNS:
        values = topics[column] if column in topics.columns else pd.Series(np.nan, index=topics.index)
        topics[column] = pd.to_numeric(values, errors="coerce").astype(float)
    faults = topics[NAME_FAULTS_COLUMN] if NAME_FAULTS_COLUMN in topics.columns else pd.Series("", index=topics.index)
    topics[NAME_FAULTS_COLUMN] = ["" if _missing(v) else str(v) for v in faults]
    topics = _with_coarse_level(topics)
    return topics.sort_values("topic", kind="mergesort").reset_index(drop=True)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _with_coarse_level(topics: pd.DataFrame) -> pd.DataFrame:
    """coarse_topic (int) and coarse_name (str) on every row; outliers are group -1."""
    has = all(c in topics.columns for c in COARSE_COLUMNS)
    coarse = topics["coarse_topic"] if has else pd.Series([None] * len(topics), index=topics.index)
    names = topics["coarse_name"] if has else pd.Series([None] * len(topics), index=topics.index)
    coarse_ids, coarse_names = [], []
    for topic, name, group, group_name in zip(topics["topic"], topics["name"], coarse, names, strict=True):
        if topic == OUTLIER_TOPIC:
            coarse_ids.append(OUTLIER_TOPIC)
            coarse_names.append(name)
        elif _missing(group):
            # No coarse level for this topic: it stands alone, under a group id no topic uses.
            coarse_ids.append(-1000 - int(topic))
            coarse_names.append(name)
        else:
            coarse_ids.append(int(group))
            coarse_names.append(name if _missing(group_name) or not str(group_name) else str(group_name))
    return topics.assign(coarse_topic=coarse_ids, coarse_name=coarse_names)


def has_coarse_level(topics: pd.DataFrame) -> bool:
    """True when the coarse level groups the topics into fewer (but at least 2) groups."""
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    n_groups = real["coarse_topic"].nunique()
    return 2 <= n_groups < len(real)


def join_tables(papers: pd.DataFrame, assignments: pd.DataFrame, topics: pd.DataFrame) -> pd.DataFrame:
    """Papers (in their order) with topic, topic_name, score, x and y; empty text is "".

    Raises ValueError unless every paper has exactly one assignment and every assigned
    topic is in ``topics``.
    """
    check_columns(papers, PAPER_COLUMNS, "papers")
    check_columns(assignments, ASSIGNMENT_COLUMNS, "assignments")
    # Column by column, Arrow-backed all the way: no Python string per value (1 us each) and
    # no copy of the texts (gigabytes at a million papers).
    joined = pd.DataFrame({c: papers[c].astype("str").fillna("").reset_index(drop=True) for c in PAPER_COLUMNS})
    if joined["paper_id"].duplicated().any():
        raise ValueError("report: the papers table has duplicate paper_id values")
    placed = assignments.loc[:, list(ASSIGNMENT_COLUMNS)]
    placed_ids = pd.Index(placed["paper_id"].astype(str))
    rows = placed_ids.get_indexer(joined["paper_id"]) if placed_ids.is_unique else np.zeros(0, dtype=np.int64)
    if len(placed) != len(joined) or len(rows) != len(joined) or (rows < 0).any():
        raise ValueError("report: assignments must have exactly one row per paper (matched by paper_id)")
    for column in ASSIGNMENT_COLUMNS:
        if column != "paper_id":
            joined[column] = placed[column].to_numpy()[rows]
    joined["topic"] = joined["topic"].astype(int)
    for column in ("score", "x", "y"):
        joined[column] = joined[column].astype(float)
    names = dict(zip(topics["topic"].astype(int), topics["name"].astype(str), strict=True))
    unknown = sorted(set(np.unique(joined["topic"].to_numpy()).tolist()) - set(names))
    if unknown:
        raise ValueError(f"report: papers are assigned to topic(s) {unknown} missing from the topics table")
    joined["topic_name"] = joined["topic"].map(names)
    return joined


def representatives(topics: pd.DataFrame, joined: pd.DataFrame, limit: int) -> list[list[dict[str, str]]]:
    """Per topic row, its first ``limit`` representative papers as {title, href}."""
    by_id = joined.set_index("paper_id")
    result = []
    for topic, ids in zip(topics["topic"], topics["representative_ids"], strict=True):
        unknown = [pid for pid in ids[:limit] if pid not in by_id.index]
        if unknown:
            raise ValueError(f"report: topic {topic} names representative paper(s) {unknown} not in papers")
        result.append(
            [{"title": by_id.at[pid, "title"] or pid, "href": safe_url(by_id.at[pid, "url"])} for pid in ids[:limit]]
        )
    return result


@dataclass(frozen=True)
class Neighbour:
    topic: int
    distance: float | None  # on the intertopic map; None when ranked by keyword overlap
    shared_keywords: tuple[str, ...]


def nearest_topics(topics: pd.DataFrame, k: int = 5) -> dict[int, list[Neighbour]]:
    """The ``k`` nearest real topics of every real topic.

    Nearest by distance on the intertopic map when every topic has a finite (x, y),
    else by keyword overlap (Jaccard of the keyword sets). Ties go to the lower topic id.
    """
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    ids = [int(t) for t in real["topic"]]
    keywords = {int(t): list(k) for t, k in zip(real["topic"], real["keywords"], strict=True)}
    points = {int(t): (float(x), float(y)) for t, x, y in zip(real["topic"], real["x"], real["y"], strict=True)}
    by_map = all(math.isfinite(x) and math.isfinite(y) for x, y in points.values())
    result: dict[int, list[Neighbour]] = {}
    for topic in ids:
        own = set(keywords[topic])
        ranked = []
        for other in ids:
            if other == topic:
                continue
            shared = tuple(word for word in keywords[other] if word in own)
            if by_map:
                distance = math.dist(points[topic], points[other])
                ranked.append(((distance, other), Neighbour(other, distance, shared)))
            else:
                union = own | set(keywords[other])
                jaccard = len(shared) / len(union) if union else 0.0
                ranked.append(((-jaccard, other), Neighbour(other, None, shared)))
        result[topic] = [neighbour for _, neighbour in sorted(ranked, key=lambda item: item[0])[:k]]
    return result


def source_names(sources: pd.Series) -> dict[str, str]:
    """A short display name per source path: its file name, or the whole path when names clash."""
    unique = sorted(set(sources.tolist()))
    base = {s: s.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or s for s in unique}
    clashes = {name for name in base.values() if list(base.values()).count(name) > 1}
    return {s: (s if base[s] in clashes else base[s]) for s in unique}


def source_split(joined: pd.DataFrame, max_sources: int = 12) -> pd.DataFrame | None:
    """Papers per (source, topic), or None when all papers come from one source.

    Returns a DataFrame indexed by source display name (largest source first; beyond
    ``max_sources`` the rest are summed as "(other sources)"), one int column per topic
    in topic order.
    """
    sources = joined["source"]
    if sources.nunique() < 2:
        return None
    names = source_names(sources)
    table = pair_counts(sources.map(names), joined["topic"]).astype(int)
    order = sorted(table.index, key=lambda s: (-int(table.loc[s].sum()), s))
    table = table.loc[order]
    if len(table) > max_sources:
        kept, rest = table.iloc[: max_sources - 1], table.iloc[max_sources - 1 :]
        table = pd.concat([kept, rest.sum().to_frame(OTHER_SOURCES).T])
    table.columns = [int(c) for c in table.columns]
    return table.sort_index(axis=1)
