"""Report stage: tables in, every output file out (as bytes), no file I/O.

``build_report`` returns ``{relative path: content}``; the caller's artifact store
writes the dict atomically under ``outputs/<run>/``::

    index.html                  overview: inputs, topics, notes, timings, settings
    map.html                    interactive document map (one point per paper)
    topics.html                 intertopic distance map + keyword bar charts
    papers.csv, topics.csv      every paper / every topic
    topics/<NN>-<slug>.csv      one per topic (outliers: topics/outliers-unassigned.csv)
    assets/plotly-<v>.min.js    plotly.js, once, loaded by the pages from file://
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.config import ReportConfig
from pipeline.report import figures, pages
from pipeline.report.csv_export import (
    check_slug,
    papers_csv,
    topic_csv_path,
    topic_csvs,
    topic_number_width,
    topics_csv,
)
from pipeline.report.text import safe_url
from pipeline.schema import (
    ASSIGNMENT_COLUMNS,
    OUTLIER_TOPIC,
    PAPER_COLUMNS,
    TOPIC_COLUMNS,
)

__all__ = ["build_report", "join_tables"]

OUTLIER_NAME = "Outliers (unassigned)"
INDEX_KEYWORDS = 8


def build_report(
    papers: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    summary: Mapping[str, Any],
    config: ReportConfig,
) -> dict[str, bytes]:
    """Every file of the report as relative path → content, in sorted path order.

    Args:
        papers: one row per paper, as described in ``pipeline.schema``.
        assignments: topic, score and map position of every paper.
        topics: one row per topic, -1 included when there are outliers.
        summary: run facts for the overview page (name, inputs, counts, timings,
            settings, seed, has_labels, created, notes).
        config: the ``report`` section of the run config.

    Returns:
        Relative path → file content, e.g. ``{"index.html": b"<!doctype html>..."}``.

    Raises:
        ValueError: the tables break their contract (missing columns, papers without
            an assignment, a topic missing from ``topics``, an unsafe slug).
    """
    topics = _topics_with_outliers(topics, assignments)
    joined = join_tables(papers, assignments, topics)
    width = topic_number_width(topics["topic"].tolist())
    topics = topics.assign(
        csv=[topic_csv_path(int(t), s, width) for t, s in zip(topics["topic"], topics["slug"], strict=True)],
        representatives=_representatives(topics, joined, config.representative_titles),
    )

    files: dict[str, bytes] = {pages.plotly_asset_path(): pages.plotly_asset()}
    files["papers.csv"] = papers_csv(joined)
    files["topics.csv"] = topics_csv(
        topics.assign(representative_titles=[[r["title"] for r in reps] for reps in topics["representatives"]])
    )
    files.update(topic_csvs(joined, dict(zip(topics["topic"].astype(int), topics["csv"], strict=True))))

    title = config.title or f"{summary['name']} · papertopics"
    common = {"title": title, "run_name": summary["name"], "created": summary.get("created", "")}
    files["map.html"] = _map_page(joined, config, common)
    files["topics.html"] = _topics_page(topics, common)
    files["index.html"] = pages.render("index.html", _index_context(topics, joined, summary, common))
    return dict(sorted(files.items()))


def _check_columns(table: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"report: the {name} table lacks column(s) {', '.join(missing)}")


def _topics_with_outliers(topics: pd.DataFrame, assignments: pd.DataFrame) -> pd.DataFrame:
    """``topics`` checked, sorted by topic, with an outlier row when papers are outliers.

    The label stage writes the -1 row itself; it is added here only if missing, because
    the outlier row carries no information of its own (no keywords, no position).
    """
    _check_columns(topics, TOPIC_COLUMNS, "topics")
    _check_columns(assignments, ASSIGNMENT_COLUMNS, "assignments")
    topics = topics.loc[:, list(TOPIC_COLUMNS)].copy()
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
        topics[column] = [[] if v is None else list(v) for v in topics[column]]
    topics["name"] = topics["name"].fillna("").astype(str)
    topics["size"] = topics["size"].astype(int)
    return topics.sort_values("topic", kind="mergesort").reset_index(drop=True)


def join_tables(papers: pd.DataFrame, assignments: pd.DataFrame, topics: pd.DataFrame) -> pd.DataFrame:
    """Papers (in their order) with topic, topic_name, score, x and y; empty text is "".

    Raises ValueError unless every paper has exactly one assignment and every assigned
    topic is in ``topics``.
    """
    _check_columns(papers, PAPER_COLUMNS, "papers")
    _check_columns(assignments, ASSIGNMENT_COLUMNS, "assignments")
    text = pd.DataFrame({c: [("" if pd.isna(v) else str(v)) for v in papers[c]] for c in PAPER_COLUMNS})
    if text["paper_id"].duplicated().any():
        raise ValueError("report: the papers table has duplicate paper_id values")
    placed = assignments.loc[:, list(ASSIGNMENT_COLUMNS)].copy()
    placed["paper_id"] = placed["paper_id"].astype(str)
    if len(placed) != len(text) or set(placed["paper_id"]) != set(text["paper_id"]):
        raise ValueError("report: assignments must have exactly one row per paper (matched by paper_id)")
    joined = text.merge(placed, on="paper_id", how="left", validate="one_to_one")
    joined["topic"] = joined["topic"].astype(int)
    for column in ("score", "x", "y"):
        joined[column] = joined[column].astype(float)
    names = dict(zip(topics["topic"].astype(int), topics["name"].astype(str), strict=True))
    unknown = sorted(set(joined["topic"]) - set(names))
    if unknown:
        raise ValueError(f"report: papers are assigned to topic(s) {unknown} missing from the topics table")
    joined["topic_name"] = joined["topic"].map(names)
    return joined


def _representatives(topics: pd.DataFrame, joined: pd.DataFrame, limit: int) -> list[list[dict[str, str]]]:
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


def _map_page(joined: pd.DataFrame, config: ReportConfig, common: dict[str, Any]) -> bytes:
    points = joined.loc[:, ["x", "y", "topic", "topic_name", "title", "abstract", "url"]]
    fig = figures.document_map(points, config.hover_abstract_chars)
    div = pages.figure_div(fig, "document-map", height="calc(100vh - 110px)", post_script=pages.MAP_CLICK_SCRIPT)
    return pages.render_figure_page(
        page="map",
        heading="Document map",
        intro="One point per paper, placed so that similar papers sit close together. Hover for details; "
        "click a point to open the paper; click a legend entry to hide a topic, double-click to show it alone.",
        sections=[{"heading": "", "note": "", "div": div}],
        common=common,
        wide=True,
    )


def _topics_page(topics: pd.DataFrame, common: dict[str, Any]) -> bytes:
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    if real.empty:
        sections = [{"heading": "", "note": "No topics were found: every paper is an outlier.", "div": ""}]
    else:
        shown = figures.barchart_topics(real)
        capped = (
            f"Showing the {len(shown)} largest of {len(real)} topics; every topic is listed on the overview page."
            if len(shown) < len(real)
            else ""
        )
        bubbles = pages.figure_div(figures.intertopic_map(real), "intertopic-map", height="560px")
        sections = [
            {"heading": "", "note": "", "div": bubbles},
            {
                "heading": "Top keywords per topic",
                "note": capped,
                "div": pages.figure_div(figures.keyword_barcharts(shown), "keyword-barcharts", height="100%"),
            },
        ]
    return pages.render_figure_page(
        page="topics",
        heading="Topic charts",
        intro="Each bubble is a topic, its area the number of papers; nearby topics are similar. "
        "Below, the keywords that best describe each topic.",
        sections=sections,
        common=common,
        wide=False,
    )


def _index_context(
    topics: pd.DataFrame, joined: pd.DataFrame, summary: Mapping[str, Any], common: dict[str, Any]
) -> dict[str, Any]:
    n_papers = len(joined)
    colors = figures.topic_colors(topics["topic"].tolist())
    has_labels = bool(summary.get("has_labels", False))
    rows = []
    for row in topics.itertuples(index=False):
        topic = int(row.topic)
        in_topic = joined[joined["topic"] == topic]
        rows.append(
            {
                "topic": topic,
                "is_outlier": topic == OUTLIER_TOPIC,
                "name": row.name,
                "size": int(row.size),
                "share": _percent(len(in_topic), n_papers),
                "keywords": row.keywords[:INDEX_KEYWORDS],
                "representatives": row.representatives,
                "labels": _top_labels(in_topic["label"]) if has_labels else "",
                "csv": row.csv,
                "csv_name": row.csv.rsplit("/", 1)[-1],
                "color": colors.get(topic, figures.OUTLIER_COLOR),
            }
        )
    stage_seconds = dict(summary.get("stage_seconds", {}))
    n_outliers = int((joined["topic"] == OUTLIER_TOPIC).sum())
    return {
        **common,
        "page": "index",
        "n_papers": n_papers,
        "n_topics": sum(not r["is_outlier"] for r in rows),
        "n_outliers": n_outliers,
        "outlier_share": _percent(n_outliers, n_papers),
        "n_read": int(summary.get("n_read", n_papers)),
        "n_duplicates": int(summary.get("n_duplicates", 0)),
        "n_skipped": int(summary.get("n_skipped", 0)),
        "topics": [r for r in rows if not r["is_outlier"]],
        "outliers": [r for r in rows if r["is_outlier"]],
        "has_labels": has_labels,
        "inputs": [_input_row(item) for item in summary.get("inputs", [])],
        "notes": [str(note) for note in summary.get("notes", [])],
        "timings": [(str(stage), float(seconds)) for stage, seconds in stage_seconds.items()],
        "total_seconds": float(sum(stage_seconds.values())),
        "seed": summary.get("seed", ""),
        "settings_json": json.dumps(
            summary.get("settings", {}), indent=2, sort_keys=True, ensure_ascii=False, default=str
        ),
    }


def _input_row(item: Mapping[str, Any]) -> dict[str, Any]:
    reasons = dict(item.get("skip_reasons") or {})
    return {
        "path": str(item.get("path", "")),
        "reader": str(item.get("reader", "")),
        **{key: int(item.get(key, 0)) for key in ("read", "kept", "duplicates", "skipped")},
        "skip_reasons": sorted(((str(k), int(v)) for k, v in reasons.items()), key=lambda kv: (-kv[1], kv[0])),
    }


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def _top_labels(labels: pd.Series, n: int = 3) -> str:
    counts = labels[labels != ""].value_counts()
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{label} ({count})" for label, count in top)
