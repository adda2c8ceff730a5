"""Report stage: tables in, every output file out (as bytes), no file I/O.

``build_report`` returns ``{relative path: content}``; the caller's artifact store
writes the dict atomically under ``outputs/<run>/``::

    index.html                  dashboard: run summary, quality figures, sortable topic table
    map.html                    document map: search, hover card, topic/date filters, zoom labels
    map-papers.js               above 200,000 papers, the papers the map does not draw, for search
    topics.html                 topic charts: intertopic map, topics over time, hierarchy,
                                topics by source, keyword bars
    papers.csv, topics.csv      every paper / every topic
    topics/<NN>-<slug>.csv      one per topic (outliers: topics/outliers-unassigned.csv)
    topics/<NN>-<slug>.html     one page per topic, beside its CSV
    new.html, digest.md,        what changed since the previous run (when the label stage's
    feed.atom                   feed tables are given): pipeline.report.whats_new
    assets/plotly-<v>.min.js    plotly.js, once, loaded by the pages from file://
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from pipeline.config import ReportConfig
from pipeline.files import JoinedBytes
from pipeline.parallel import built_beside
from pipeline.report import figures, pages, views
from pipeline.report.csv_export import paper_csvs, topic_csv_path, topic_csvs, topic_number_width, topics_csv
from pipeline.report.docmap import MAP_POINTS_CAP
from pipeline.report.hierarchy import dendrogram
from pipeline.report.kept import ReportMemo, TopicCsvsArrays, computed
from pipeline.report.tables import (
    has_coarse_level,
    join_tables,
    nearest_topics,
    prepare_topics,
    representatives,
    source_split,
)
from pipeline.report.timeline import build_timeline, trends
from pipeline.report.topic_pages import topic_pages
from pipeline.report.whats_new import FeedTables, whats_new_files

__all__ = ["build_report", "join_tables"]

# From this many papers the map and the charts are built in a forked process beside the rest
# (see pipeline/parallel.py): 1 s saved at 75,000 papers; a fork costs more than it
# saves for a few thousand papers.
FORK_MIN_PAPERS = 20_000
# ... and up to this many: the forked child's copy of the joined tables grows as it writes, and
# at 1,000,000 papers the driver (18 GB) and its child were killed for memory together on a 24 GB
# machine (docs/scale.md); one process is slower by a second and holds one copy.
FORK_MAX_PAPERS = 300_000


def build_report(
    papers: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    summary: Mapping[str, Any],
    config: ReportConfig,
    *,
    hierarchy: pd.DataFrame | None = None,
    metrics: Mapping[str, Any] | None = None,
    feed: FeedTables | None = None,
    stability: dict[str, str] | None = None,
    fork_min_papers: int = FORK_MIN_PAPERS,
    map_points_cap: int = MAP_POINTS_CAP,
    memo: ReportMemo = computed,
) -> dict[str, bytes | JoinedBytes]:
    """Every file of the report as relative path → content, in sorted path order.

    Args:
        papers: one row per paper, as described in ``pipeline.schema``.
        assignments: topic, score and map position of every paper.
        topics: one row per topic, -1 included when there are outliers; ``coarse_topic``
            and ``coarse_name`` are optional (without them the map names topics only).
        summary: run facts for the overview page (name, inputs, counts, timings,
            settings, seed, has_labels, created, notes).
        config: the ``report`` section of the run config.
        hierarchy: the label stage's topic hierarchy (``pipeline.schema``); None or
            empty leaves the hierarchy section out.
        metrics: the label stage's quality figures (a flat dict); None leaves them out.
        feed: the label stage's topic history, registry and feed entries; None leaves
            ``new.html``, ``digest.md`` and ``feed.atom`` out (``pipeline.report.whats_new``).
        stability: the seed-stability card (``pipeline.stability.stability_card``), shown beside
            the quality figures; None leaves it out.
        fork_min_papers: from this many papers (up to FORK_MAX_PAPERS), the map and charts pages are built in a
            forked process while this one builds the other files (Linux only; same files).
        map_points_cap: above this many papers the map draws a seeded sample of this many and
            the rest as density; ``map-papers.js`` then holds the others for search (``docmap``).
        memo: gives the topic CSVs and the topic pages' paper rows, computed or kept from an earlier
            run of the same ``papers`` and ``assignments`` (``pipeline.report.kept``); the default keeps none.

    Returns:
        Relative path → file content, e.g. ``{"index.html": b"<!doctype html>..."}``; papers.csv's is
        a :class:`~pipeline.files.JoinedBytes` (its topics' CSV rows, written one after the other).

    Raises:
        ValueError: the tables break their contract (missing columns, papers without
            an assignment, a topic missing from ``topics``, an unsafe slug, a hierarchy
            that is not a tree over the topics).
    """
    topics = prepare_topics(topics, assignments)
    joined = join_tables(papers, assignments, topics)
    width = topic_number_width(topics["topic"].tolist())
    csv_paths = [topic_csv_path(int(t), s, width) for t, s in zip(topics["topic"], topics["slug"], strict=True)]
    topics = topics.assign(
        csv=csv_paths,
        page=[path.removesuffix(".csv") + ".html" for path in csv_paths],
        representatives=representatives(topics, joined, config.representative_titles),
    )
    real_ids = [int(t) for t in topics["topic"] if t >= 0]
    timeline = build_timeline(joined["date"], joined["topic"], topics["topic"].astype(int).tolist())
    report = views.ReportData(
        topics=topics,
        joined=joined,
        config=config,
        summary={**summary, "whats_new": feed is not None},
        colors=figures.topic_colors(topics["topic"].tolist()),
        timeline=timeline,
        trends=trends(timeline) if timeline else {},
        coarse=has_coarse_level(topics),
        neighbours=nearest_topics(topics),
        sources=source_split(joined),
        tree=dendrogram(hierarchy, real_ids),
        metrics=dict(metrics) if metrics is not None else None,
        stability=stability,
    )

    files: dict[str, bytes | JoinedBytes] = {pages.plotly_asset_path(): pages.plotly_asset()}

    def map_and_charts() -> dict[str, bytes | JoinedBytes]:
        return {**views.map_files(report, map_points_cap), "topics.html": views.charts_page(report)}

    # The two halves take about as long at 75,000 papers (1.7 s each on this 2-core machine).
    forked = fork_min_papers <= len(joined) <= FORK_MAX_PAPERS
    start_method: Literal["fork"] | None = "fork" if forked else None
    with built_beside(map_and_charts, start_method) as pages_built_beside:
        csv_of_topic = dict(zip(topics["topic"].astype(int), topics["csv"], strict=True))
        # The CSVs depend on the papers, the assignments and the topics' names (each paper's topic_name).
        names = [[int(topic), str(name)] for topic, name in zip(topics["topic"], topics["name"], strict=True)]
        csvs = memo("topic-csvs", {"names": names}, lambda: topic_csvs(joined), TopicCsvsArrays())
        files["papers.csv"], topic_files = paper_csvs(joined, csv_of_topic, csvs)
        files["topics.csv"] = topics_csv(
            topics.assign(representative_titles=[[r["title"] for r in reps] for reps in topics["representatives"]])
        )
        files.update(topic_files)
        files["index.html"] = views.index_page(report)
        files.update(topic_pages(report, memo))
        if feed is not None:
            files.update(
                whats_new_files(joined, topics, feed.history, feed.registry, feed.entries, report.common("new"))
            )
        files.update(pages_built_beside())
    return dict(sorted(files.items()))
