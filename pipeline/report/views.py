"""The pages of the report: each function turns the prepared tables into one page (bytes).

``ReportData`` holds everything derived once in ``build_report``; the functions here
only pick, format and render. Paths in ``topics`` (``csv``, ``page``) are relative to
the report's top folder; pages inside ``topics/`` reach them through ``root = "../"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import ReportConfig
from pipeline.files import JoinedBytes
from pipeline.metrics import METRIC_LABELS
from pipeline.report import figures, pages
from pipeline.report.docmap import MAP_POINTS_CAP, REST_FILE, MapData, map_data
from pipeline.report.hierarchy import Dendrogram
from pipeline.report.tables import Neighbour, source_names
from pipeline.report.text import shorten
from pipeline.report.timeline import PERIOD_WORDS, Timeline, Trend, iso_dates, rising_rule, sparkline
from pipeline.schema import OUTLIER_TOPIC

INDEX_KEYWORDS = 8
SOURCE_TOP_TOPICS = 3
# How the label stage's quality figures are shown, in this order (their labels and meanings are
# pipeline.metrics.METRIC_LABELS). Figures already on the overview's first row (topics, outlier
# share) are not repeated.
METRIC_FORMATS: dict[str, str] = {
    "largest_topic_share": "percent",
    "npmi": "{:.3f}",
    "diversity": "{:.2f}",
    "nmi": "{:.3f}",
    "ami": "{:.3f}",
    "ari": "{:.3f}",
    "name_coverage_mean": "percent",
    "name_coverage_min": "percent",
    "name_low_coverage_share": "percent",
    "name_lift_median": "{:.1f}",
    "name_nearest_share": "percent",
    "name_faults": "{:d}",
}
METRICS_SHOWN_ELSEWHERE = {"n_topics", "outlier_share"}
# NPMI counts word pairs in 10-word windows of the run's own texts. In a small pile most pairs
# of a topic's keywords never share a window, and each such pair scores near -1: the bundled
# 64 seed papers score about -0.13, 2,000 arXiv papers 0.05, 75,000 0.18, with topics a person
# would call good in all three. Below this many papers the card says so.
NPMI_FEW_PAPERS = 1000


@dataclass(frozen=True)
class ReportData:
    topics: pd.DataFrame  # prepared topics + csv, page, representatives
    joined: pd.DataFrame  # papers + topic, topic_name, score, x, y
    config: ReportConfig
    summary: Mapping[str, Any]
    colors: dict[int, str]
    timeline: Timeline | None
    trends: dict[int, Trend]
    coarse: bool
    neighbours: dict[int, list[Neighbour]]
    sources: pd.DataFrame | None
    tree: Dendrogram | None
    metrics: dict[str, Any] | None
    # The seed-stability card (pipeline.stability.stability_card) when it was computed for this clustering.
    stability: dict[str, str] | None = None

    @property
    def names(self) -> dict[int, str]:
        return dict(zip(self.topics["topic"].astype(int), self.topics["name"], strict=True))

    def common(self, page: str) -> dict[str, Any]:
        title = self.config.title or f"{self.summary['name']} · papertopics"
        return {"title": title, "run_name": self.summary["name"], "created": self.summary.get("created", ""),
                "page": page, "recluster": self.summary.get("recluster")}  # fmt: skip


def percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


# ----------------------------------------------------------------------------- topic rows


def _trend(report: ReportData, topic: int, shares_table: pd.DataFrame | None) -> dict[str, Any] | None:
    """``shares_table``: ``report.timeline.shares()``, computed once for all topics."""
    trend = report.trends.get(topic)
    if trend is None or report.timeline is None or shares_table is None:
        return None
    shares = shares_table.loc[topic].tolist()
    recent = report.timeline.recent_periods
    window = recent[0] if len(recent) == 1 else f"{recent[0]} to {recent[-1]}"
    return {
        "points": sparkline(shares),
        "rising": trend.rising,
        "change": trend.change,
        "title": f"{100 * trend.recent_share:.1f}% of the dated papers in {window}, "
        f"{100 * trend.earlier_share:.1f}% before",
    }


def topic_rows(report: ReportData) -> list[dict[str, Any]]:
    """One dict per topic (outliers included) with what the overview and topic pages show."""
    joined, n_papers = report.joined, len(report.joined)
    has_labels = bool(report.summary.get("has_labels", False))
    # Each topic's papers counted once, not one comparison of every paper's topic per topic.
    topic_of = joined["topic"].to_numpy()
    sizes = pd.Series(topic_of).value_counts()
    top_labels = _top_labels(topic_of, joined["label"]) if has_labels else {}
    shares = report.timeline.shares() if report.timeline is not None else None
    rows = []
    for row in report.topics.itertuples(index=False):
        topic = int(row.topic)
        is_outlier = topic == OUTLIER_TOPIC
        rows.append(
            {
                "topic": topic,
                "is_outlier": is_outlier,
                "name": row.name,
                "name_coverage": ""
                if is_outlier or math.isnan(row.name_coverage)
                else f"{100 * row.name_coverage:.0f}%",
                "name_phrase": row.name.split(", ")[0],
                "name_faults": "" if is_outlier else row.name_faults,
                "coarse_name": row.coarse_name if report.coarse and not is_outlier else "",
                "size": int(row.size),
                "share": percent(int(sizes.get(topic, 0)), n_papers),
                "keywords": row.keywords,
                "representatives": row.representatives,
                "labels": top_labels.get(topic, ""),
                "csv": row.csv,
                "csv_name": row.csv.rsplit("/", 1)[-1],
                "page": row.page,
                "color": report.colors.get(topic, figures.OUTLIER_COLOR),
                "trend": None if is_outlier else _trend(report, topic, shares),
            }
        )
    return rows


def _top_labels(topic_of: np.ndarray, labels: pd.Series, n: int = 3) -> dict[int, str]:
    """Each topic's ``n`` most common known labels, "label (count)", most common first (ties by label)."""
    frame = pd.DataFrame({"topic": topic_of, "label": labels.to_numpy()})
    counts = frame[frame["label"] != ""].groupby(["topic", "label"], sort=False).size()
    by_topic: dict[int, list[str]] = {}
    for (topic, label), count in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
        by_topic.setdefault(int(topic), []).append(f"{label} ({count})")
    return {topic: ", ".join(ranked[:n]) for topic, ranked in by_topic.items()}


# ----------------------------------------------------------------------------- overview


def _metric_cards(metrics: Mapping[str, Any] | None, n_papers: int) -> list[dict[str, str]]:
    cards = []
    metrics = metrics or {}
    ordered = [k for k in METRIC_FORMATS if k in metrics] + sorted(k for k in metrics if k not in METRIC_FORMATS)
    for key, value in ((k, metrics[k]) for k in ordered):
        if key in METRICS_SHOWN_ELSEWHERE or isinstance(value, list | dict):  # per-topic rows: on the topic pages
            continue
        label, note = METRIC_LABELS.get(key, (key.replace("_", " "), ""))
        fmt = METRIC_FORMATS.get(key, "{}")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            shown, note = "–", "could not be computed for this run"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            shown = str(value)
        elif fmt == "percent":
            shown = f"{100.0 * float(value):.1f}%"
        else:
            shown = fmt.format(value) if fmt != "{}" else f"{value:g}"
        if key == "npmi" and shown != "–" and n_papers < NPMI_FEW_PAPERS:
            note = (
                f"−1 to 1: how often a topic's keywords occur together. With {n_papers:,} papers most "
                "keyword pairs never meet and it reads low: compare runs of this pile, not piles"
            )
        cards.append({"label": label, "value": shown, "note": note})
    return cards


def _source_rows(report: ReportData) -> list[dict[str, Any]]:
    if report.sources is None:
        return []
    paths = {name: path for path, name in source_names(report.joined["source"]).items()}
    names = report.names
    pages_ = dict(zip(report.topics["topic"].astype(int), report.topics["page"], strict=True))
    rows = []
    for source, counts in report.sources.iterrows():
        total = int(counts.sum())
        real = counts[counts.index != OUTLIER_TOPIC].sort_values(ascending=False, kind="mergesort")
        top = [
            {"name": names[int(t)], "page": pages_[int(t)], "color": report.colors[int(t)], "share": percent(c, total)}
            for t, c in real.head(SOURCE_TOP_TOPICS).items()
            if c > 0
        ]
        rows.append({"name": source, "path": paths.get(str(source), str(source)), "papers": total, "top": top})
    return rows


# How a file's dates without a year ("Feb 10") got one: parse report rule -> what the dashboard says.
DATE_RULE_TEXT = {
    "year setting": "the input's year setting: {}",
    "file name": "the date in the file name: {}",
    "file modified": "the file's modification day: {}",
    "latest past date": "the latest such day up to the run's day, {} (no date in the name, no modification time)",
}


def _input_row(item: Mapping[str, Any]) -> dict[str, Any]:
    reasons = dict(item.get("skip_reasons") or {})
    rule, reference = str(item.get("date_rule", "")), str(item.get("date_reference", ""))
    first_error = dict(item.get("first_date_error") or {})
    return {
        "path": str(item.get("path", "")),
        "reader": str(item.get("reader", "")),
        **{key: int(item.get(key, 0)) for key in ("read", "kept", "duplicates", "skipped")},
        "skip_reasons": sorted(((str(k), int(v)) for k, v in reasons.items()), key=lambda kv: (-kv[1], kv[0])),
        "date_rule": rule,
        "date_rule_text": DATE_RULE_TEXT.get(rule, rule + " {}").format(reference) if rule else "",
        "date_errors": [
            (str(reason), int(count), str(first_error.get(reason, "")))
            for reason, count in sorted(dict(item.get("date_errors") or {}).items())
        ],
    }


def index_page(report: ReportData) -> bytes:
    """``index.html``: the dashboard."""
    rows = topic_rows(report)
    summary, n_papers = report.summary, len(report.joined)
    inputs = [_input_row(item) for item in summary.get("inputs", [])]
    for row in rows:
        row["keywords"] = row["keywords"][:INDEX_KEYWORDS]
    stage_seconds = dict(summary.get("stage_seconds", {}))
    n_outliers = int((report.joined["topic"] == OUTLIER_TOPIC).sum())
    rising = [
        {"topic": r["topic"], "name": r["name"], "page": r["page"], "change": f"{r['trend']['change']:+.1f} points"}
        for r in sorted(rows, key=lambda r: -(r["trend"]["change"] if r["trend"] else 0.0))
        if r["trend"] and r["trend"]["rising"]
    ]
    context = {
        **report.common("index"),
        "n_papers": n_papers,
        "n_topics": sum(not r["is_outlier"] for r in rows),
        "n_outliers": n_outliers,
        "outlier_share": percent(n_outliers, n_papers),
        "n_read": int(summary.get("n_read", n_papers)),
        "n_duplicates": int(summary.get("n_duplicates", 0)),
        "n_skipped": int(summary.get("n_skipped", 0)),
        "metrics": _metric_cards(report.metrics, n_papers) + ([report.stability] if report.stability else []),
        "topics": [r for r in rows if not r["is_outlier"]],
        "outliers": [r for r in rows if r["is_outlier"]],
        "has_labels": bool(summary.get("has_labels", False)),
        "has_trend": report.timeline is not None,
        "period_word": PERIOD_WORDS[report.timeline.period] if report.timeline else "",
        "rising": rising,
        "whats_new": bool(summary.get("whats_new", False)),
        "rising_rule": rising_rule(report.timeline) if report.timeline else "",
        "sources": _source_rows(report),
        "inputs": inputs,
        "has_date_rules": any(row["date_rule"] or row["date_errors"] for row in inputs),
        "notes": [str(note) for note in summary.get("notes", [])],
        "timings": [(str(stage), float(seconds)) for stage, seconds in stage_seconds.items()],
        "total_seconds": float(sum(stage_seconds.values())),
        "seed": summary.get("seed", ""),
        "settings_json": json.dumps(summary.get("settings", {}), indent=2, sort_keys=True, ensure_ascii=False,
                                    default=str),
        "table_js": pages.template_text("table.js"),
    }  # fmt: skip
    return pages.render("index.html", context)


# ----------------------------------------------------------------------------- document map


def _topic_groups(report: ReportData) -> list[dict[str, Any]]:
    """Topics for the map's topic menu, under their coarse group when there is one."""
    groups: dict[Any, dict[str, Any]] = {}
    ordered = report.topics.sort_values(["coarse_topic", "topic"], kind="mergesort") if report.coarse else report.topics
    for row in ordered.itertuples(index=False):
        topic = int(row.topic)
        key = row.coarse_topic if report.coarse and topic != OUTLIER_TOPIC else "all"
        group = groups.setdefault(key, {"name": row.coarse_name if key != "all" else "", "topics": []})
        label = f"{topic}: {row.name}" if topic != OUTLIER_TOPIC else row.name
        group["topics"].append({"topic": topic, "label": shorten(label, 60)})
    return sorted(groups.values(), key=lambda g: g["name"] == "")  # ungrouped (outliers) last


def map_files(report: ReportData, points_cap: int = MAP_POINTS_CAP) -> dict[str, bytes | JoinedBytes]:
    """``map.html`` and, above ``points_cap`` papers, the papers it does not draw (``docmap.REST_FILE``)."""
    data = map_data(
        report.joined, report.topics, report.colors, report.config.hover_abstract_chars, report.coarse, points_cap
    )
    files: dict[str, bytes | JoinedBytes] = {"map.html": map_page(report, data)}
    if data.rest_js is not None:
        files[REST_FILE] = data.rest_js
    return files


def map_page(report: ReportData, data: MapData) -> bytes:
    """``map.html``: the document map, drawn in the browser from compact data."""
    stamps, _ = iso_dates(report.joined["date"])
    n = len(report.joined)
    notice = ""
    if data.points["n"] < n:
        notice = (
            f"{n:,} papers: the map draws a random {data.points['n']:,} of them as points and all of them as "
            "the grey density underneath; search finds every paper (the others load on the first search). "
        )
    if data.abstract_chars < report.config.hover_abstract_chars:
        notice += (
            f"To keep this page quick with {n:,} papers, the hover card shows "
            + (f"the first {data.abstract_chars} characters of each abstract" if data.abstract_chars else "no abstract")
            + "; the topic pages and papers.csv have the full text."
        )
    levels = (
        " Zoomed out, the map names groups of related topics; zoom in to see each topic's name."
        if report.coarse
        else ""
    )
    context = {
        **report.common("map"),
        "intro": "One point per paper; similar papers sit close together. Hover for details, click to open the "
        "paper, scroll to zoom, double-click to reset." + levels,
        "topic_groups": _topic_groups(report),
        "date_min": stamps.min().strftime("%Y-%m-%d") if stamps.notna().any() else "",
        "date_max": stamps.max().strftime("%Y-%m-%d") if stamps.notna().any() else "",
        "notice": notice,
        "layout_json": pages.script_json(figures.document_map_layout()),
        "histogram_layout_json": pages.script_json(figures.date_histogram_layout()),
        "histogram_period": (data.points["dateHistogram"] or {}).get("period", "day"),
        "points_json": data.points_json,
        "abstracts_json": pages.script_json(data.abstracts),
        "map_js": pages.template_text("map.js"),
    }
    return pages.render("map.html", context, plotly_src=pages.plotly_asset_path())


# ----------------------------------------------------------------------------- topic charts


def charts_page(report: ReportData) -> bytes:
    """``topics.html``: intertopic map, topics over time, hierarchy, topics by source, keywords."""
    real = report.topics[report.topics["topic"] != OUTLIER_TOPIC]
    names, colors = report.names, report.colors
    sections: list[dict[str, Any]] = []

    def add(section_id: str, heading: str, fig: Any = None, note: str = "", notice: str = "") -> None:
        div = ""
        if fig is not None:
            height = f"{fig.layout.height}px" if fig.layout.height else "100%"
            div = pages.figure_div(fig, section_id + "-chart", height=height)
        sections.append({"id": section_id, "heading": heading, "div": div, "note": note, "notice": notice})

    if real.empty:
        add("intertopic", "Topics", notice="No topics were found: every paper is an outlier.")
    else:
        add("intertopic", "Intertopic distance map", figures.intertopic_map(real),
            note="Each bubble is a topic, its area the number of papers; nearby topics are similar.")  # fmt: skip
    timeline = report.timeline
    if timeline is not None and not real.empty:
        rising = {t for t, trend in report.trends.items() if trend.rising}
        fig = figures.topics_over_time(timeline.shares(), names, colors, rising, timeline.period)
        add("over-time", "Topics over time", fig,
            note=f"Each topic's share of the papers per {PERIOD_WORDS[timeline.period]} ({timeline.n_dated:,} of "
            f"{timeline.n_papers:,} papers carry an ISO date; the others are left out). The 10 largest topics are "
            f"drawn; click a legend entry to add another. ▲ marks rising topics. {rising_rule(timeline)}")  # fmt: skip
    elif not real.empty:
        add("over-time", "Topics over time",
            note="No chart over time: fewer than two periods of papers carry an ISO date (YYYY-MM-DD or YYYY-MM); "
            "raw listing dates such as “Aug 12” have no year. Set `year` on the input to date them.")  # fmt: skip
    if report.tree is not None:
        add("hierarchy", "Topic hierarchy", figures.dendrogram(report.tree, names, colors),
            note="Topics merge into larger groups from left to right; the further right two groups join, the less "
            "alike they are. Hover a junction for the group's name.")  # fmt: skip
    if report.sources is not None:
        add("by-source", "Topics by source", figures.source_split(report.sources, names, colors),
            note="How each input's papers split across the topics (100% per source).")  # fmt: skip
    if not real.empty:
        shown = figures.barchart_topics(real)
        capped = f"The {len(shown)} largest of {len(real)} topics; every topic has its own page." if len(shown) < len(
            real) else ""  # fmt: skip
        add("keywords", "Top keywords per topic", figures.keyword_barcharts(shown), note=capped)
    context = {
        **report.common("topics"),
        "heading": "Topic charts",
        "intro": "",
        "sections": sections,
    }
    return pages.render("figures.html", context, plotly_src=pages.plotly_asset_path())


# ----------------------------------------------------------------------------- topic pages
