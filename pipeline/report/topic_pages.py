"""One page per topic (``topics/NN-slug.html``): keywords, size over time, nearest topics, sources, papers.

Built from the same ``ReportData`` as the other pages (``pipeline.report.views``); each page
lists the topic's best papers first, at most ``report.topic_page_papers`` (its CSV has all).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from pipeline.report import pages
from pipeline.report.csv_export import paper_order
from pipeline.report.kept import ReportMemo, TextRows, computed
from pipeline.report.tables import source_names
from pipeline.report.text import safe_url, shorten
from pipeline.report.timeline import bar_chart, rising_rule
from pipeline.report.views import ReportData, percent, topic_rows

TOPIC_PAGE_ABSTRACT_CHARS = 320


_NEW_TAB = 'target="_blank" rel="noopener noreferrer"'


def _paper_cells(papers: pd.DataFrame) -> list[str]:
    """Each paper's cells in a topic page's table (all but its rank), as escaped HTML, in the order of ``papers``.

    Built here rather than in a Jinja loop: a topic page lists up to ``report.topic_page_papers``
    rows and Jinja spent 40 us on each (38,000 rows at 75,000 papers). Every input text goes
    through ``escape``, as autoescape would, and every href through ``safe_url`` first.
    """
    # Whole columns as lists first: iterating Arrow-backed strings costs 1 us a value.
    columns = {column: papers[column].tolist() for column in ("paper_id", "title", "url", "authors", "abstract",
                                                              "links", "score", "date")}  # fmt: skip
    cells = []
    for paper_id, title, url, authors, abstract, links, score, date in zip(*columns.values(), strict=True):
        href, shown_title = safe_url(url), escape(title or paper_id)
        parts = [f'<td><div class="paper-title"><a href="{escape(href)}" {_NEW_TAB}>{shown_title}</a></div>' if href
                 else f'<td><div class="paper-title">{shown_title}</div>']  # fmt: skip
        if authors_text := shorten(authors, 300):
            parts.append(f'<div class="muted small">{escape(authors_text)}</div>')
        if abstract_text := shorten(abstract, TOPIC_PAGE_ABSTRACT_CHARS):
            parts.append(f'<div class="abstract small">{escape(abstract_text)}</div>')
        if hrefs := [escape(link) for link in (safe_url(token) for token in links.split()) if link]:
            parts.append('<div class="small">' + " ".join(f'<a href="{link}" {_NEW_TAB}>{link}</a>' for link in hrefs)
                         + "</div>")  # fmt: skip
        shown_score = "" if pd.isna(score) else f"{score:.3f}"
        parts.append(f'</td><td class="num">{shown_score}</td><td class="nowrap small">{escape(date)}</td>')
        cells.append("".join(parts))
    return cells


def _table_rows(cells: list[str]) -> Markup:
    """The ``<tr>`` rows of a topic page's paper table, ranked from 1."""
    return Markup("".join(f'<tr><td class="num">{rank}</td>{row}</tr>\n' for rank, row in enumerate(cells, start=1)))


def topic_pages(report: ReportData, memo: ReportMemo = computed) -> dict[str, bytes]:
    """``topics/<NN>-<slug>.html`` for every topic (outliers included).

    Topic pages draw their two small charts (keywords, papers per period) as HTML and SVG:
    with no plotly.js to load, a page per topic opens at once and costs little to build.
    ``memo`` gives the pages' paper rows (``pipeline.report.kept``): they depend on the papers,
    their topics and scores, and how many rows a page lists.
    """
    names, colors, timeline = report.names, report.colors, report.timeline
    rows = {row["topic"]: row for row in topic_rows(report)}
    pages_ = dict(zip(report.topics["topic"].astype(int), report.topics["page"], strict=True))
    sizes = dict(zip(report.topics["topic"].astype(int), report.topics["size"].astype(int), strict=True))
    order = paper_order(report.joined)
    # The rows each page lists, best first, found from one integer column and converted in one
    # pass: filtering the whole table once per topic copied every abstract 75 times at 75,000 papers.
    topic_column = report.joined["topic"].to_numpy()[order]
    members = pd.Series(topic_column).value_counts()
    listed = {topic: order[np.flatnonzero(topic_column == topic)[: report.config.topic_page_papers]]
              for topic in rows}  # fmt: skip
    listed_rows = memo(
        "topic-page-rows",
        {"topics": list(rows), "papers_per_page": report.config.topic_page_papers},
        lambda: _paper_cells(report.joined.iloc[np.concatenate([np.zeros(0, dtype=np.int64), *listed.values()])]),
        TextRows(),
    )
    if len(listed_rows) != sum(len(positions) for positions in listed.values()):
        raise ValueError("topic pages: the paper rows do not match the papers listed")
    first_row, row_of_topic = 0, {}
    for topic, positions in listed.items():
        row_of_topic[topic] = listed_rows[first_row : first_row + len(positions)]
        first_row += len(positions)
    by_map = any(nb.distance is not None for nbs in report.neighbours.values() for nb in nbs)
    source_totals = report.sources.sum(axis=1) if report.sources is not None else None
    paths = {name: path for path, name in source_names(report.joined["source"]).items()}
    files = {}
    for topic, row in rows.items():
        size = int(members.get(topic, 0))
        keyword_bars = []
        if row["keywords"]:
            weights = [float(w) for w in report.topics.loc[report.topics["topic"] == topic, "keyword_weights"].iloc[0]]
            top = max(weights[: len(row["keywords"])], default=0.0) or 1.0
            keyword_bars = [
                {"word": word, "weight": f"{weight:.3f}", "width": f"{100.0 * max(weight, 0.0) / top:.1f}"}
                for word, weight in zip(row["keywords"], weights, strict=False)
            ]
        time_bars, time_note = [], ""
        if timeline is not None:
            counts = [int(c) for c in timeline.counts.loc[topic]]
            time_bars = bar_chart(timeline.periods, counts)
            if sum(counts) < size:
                time_note = f"{sum(counts):,} of its {size:,} papers carry an ISO date and are counted here."
        neighbours = [
            {"topic": nb.topic, "name": names[nb.topic], "page": pages_[nb.topic], "color": colors[nb.topic],
             "size": sizes[nb.topic], "shared": nb.shared_keywords[:5]}
            for nb in report.neighbours.get(topic, [])
        ]  # fmt: skip
        sources = []
        if report.sources is not None and source_totals is not None and topic in report.sources.columns:
            for source, count in report.sources[topic].items():
                if count > 0:
                    sources.append({"name": source, "path": paths.get(str(source), str(source)), "papers": int(count),
                                    "share": percent(int(count), int(source_totals[source]))})  # fmt: skip
        shown = row_of_topic[topic]
        context = {
            **report.common("topic"),
            "t": row,
            "csv_name": row["csv_name"],
            "keyword_bars": keyword_bars,
            "time_bars": time_bars,
            "time_note": time_note,
            "time_span": f"{timeline.periods[0]} to {timeline.periods[-1]}" if timeline else "",
            "period_word": timeline.period if timeline else "",
            "rising_rule": rising_rule(timeline) if timeline else "",
            "neighbours": neighbours,
            "neighbour_rule": "Closest on the intertopic distance map (Topic charts); shared keywords in the list."
            if by_map
            else "The topics whose keywords overlap most with this one's.",
            "sources": sources,
            "paper_rows": _table_rows(shown),
            "shown": len(shown),
        }
        files[row["page"]] = pages.render("topic.html", context, root="../")
    return files
