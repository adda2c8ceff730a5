"""The document map's data: every paper as compact arrays that the page's script draws.

A plotly figure with 75,000 points and a hover text per point is 40+ MB of JSON. The map
page instead carries one short array per field (coordinates on an integer grid, a topic
index, title, authors, date, url split into a shared prefix and a suffix, the start of
the abstract) and builds its WebGL traces, hover card, search and filters in the browser.
Papers are ordered by topic, so each topic's papers are one contiguous slice.

The text arrays are cut to fit a byte budget, so the page stays small enough to open
quickly at any corpus size: titles are kept whole (search needs them), author lists are
shortened to three names, and the abstract's start gets what room is left.

Under the map, a histogram of papers per listing date (``date_histogram``) drives the
page's one date filter: brushing a range of bars sets it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.report.pages import script_json
from pipeline.report.text import plot_text, safe_url, shorten
from pipeline.report.timeline import iso_dates
from pipeline.schema import OUTLIER_TOPIC

GRID = 10_000  # coordinates are integers 0..GRID: 5 characters instead of 18 per number
MAP_BYTES_BUDGET = 22_000_000  # all map data together: the page stays under 25 MB
MIN_ABSTRACT_CHARS = 60  # below this an abstract's start says nothing: leave it out instead
TITLE_CHARS = 300
AUTHOR_NAMES = 3
AUTHOR_CHARS = 100
LABEL_CHARS = 40
# Beyond this many topics plotly's legend is a long scroll list that slows the first draw;
# the page's topic menu and search do its job instead.
MAX_LEGEND_TOPICS = 40
# The date histogram has one bar per listing day up to two years of days (arXiv lists ~250 days
# a year: ~500 bars), one per week (from Monday) up to twelve years (~630), then one per month.
# Month-only dates ("2024-03") get monthly bars at least.
HISTOGRAM_DAY_SPAN_MAX = 2 * 366
HISTOGRAM_WEEK_SPAN_MAX = 12 * 366


@dataclass(frozen=True)
class MapData:
    """What the map page embeds.

    ``points`` is parsed before the first draw; ``abstracts`` (one string per paper, in
    the same order) is parsed after it, so the map is interactive sooner.
    """

    points: dict[str, Any]
    abstracts: list[str]
    abstract_chars: int  # characters of each abstract kept (0 = none)
    points_json: str  # ``points`` as the page embeds it (``pages.script_json``), encoded once


def marker_size(n_papers: int) -> int:
    """Big dots for a page of papers, small ones for tens of thousands (they would hide each other)."""
    return 10 if n_papers < 300 else 7 if n_papers < 5_000 else 5 if n_papers < 30_000 else 3


def short_authors(authors: str) -> str:
    """The first ``AUTHOR_NAMES`` of a "; "-joined author list, then "et al."."""
    names = [name.strip() for name in authors.split(";") if name.strip()]
    text = "; ".join(names[:AUTHOR_NAMES]) + (" et al." if len(names) > AUTHOR_NAMES else "")
    return shorten(text, AUTHOR_CHARS)


def _grid(values: np.ndarray, low: float, span: float) -> list[int]:
    finite = np.where(np.isfinite(values), values, low + span / 2.0)
    return np.rint((finite - low) / span * GRID).astype(int).tolist()


def _split_urls(urls: list[str]) -> tuple[list[str], list[int], list[str]]:
    """Urls as (prefixes, prefix index per paper, suffix per paper); the prefix ends at the last "/"."""
    prefixes: dict[str, int] = {}
    index, suffix = [], []
    for url in urls:
        cut = url.rfind("/") + 1
        index.append(prefixes.setdefault(url[:cut], len(prefixes)))
        suffix.append(url[cut:])
    return list(prefixes), index, suffix


def json_bytes(value: object) -> int:
    """Size of ``value`` as the page embeds it (``pages.script_json``: UTF-8 JSON, escaped for a script)."""
    return len(script_json(value).encode("utf-8"))


def map_data(
    joined: pd.DataFrame, topics: pd.DataFrame, colors: dict[int, str], hover_abstract_chars: int, coarse: bool
) -> MapData:
    """The compact map data for every paper of ``joined``.

    Args:
        joined: papers with topic, topic_name, score, x, y (``tables.join_tables``).
        topics: prepared topics (``tables.prepare_topics``) with coarse_topic, coarse_name
            and a ``page`` column (relative path of the topic's page).
        colors: topic id → CSS colour.
        hover_abstract_chars: the most abstract characters to keep per paper.
        coarse: whether to include the coarse level's labels (``tables.has_coarse_level``).
    """
    order = sorted(topics["topic"].astype(int).tolist(), key=lambda t: (t != OUTLIER_TOPIC, t))
    rank = {topic: i for i, topic in enumerate(order)}
    papers = joined.assign(_rank=joined["topic"].map(rank)).sort_values(
        ["_rank", "score", "paper_id"], ascending=[True, False, True], kind="mergesort"
    )
    xs, ys = papers["x"].to_numpy(dtype=float), papers["y"].to_numpy(dtype=float)
    finite = np.concatenate([xs[np.isfinite(xs)], ys[np.isfinite(ys)]])
    low_x = float(xs[np.isfinite(xs)].min()) if np.isfinite(xs).any() else 0.0
    low_y = float(ys[np.isfinite(ys)].min()) if np.isfinite(ys).any() else 0.0
    span = max(
        float(np.nanmax(xs) - low_x) if finite.size else 0.0,
        float(np.nanmax(ys) - low_y) if finite.size else 0.0,
    )
    span = span if span > 0 and math.isfinite(span) else 1.0
    gx, gy = _grid(xs, low_x, span), _grid(ys, low_y, span)

    by_topic = topics.set_index("topic")
    counts = papers["topic"].value_counts()
    topic_rows, start = [], 0
    for topic in order:
        size = int(counts.get(topic, 0))
        row = by_topic.loc[topic]
        topic_rows.append(
            {
                "id": topic,
                "name": row["name"],
                "legend": plot_text(f"{row['name']} ({size})" if topic == OUTLIER_TOPIC else
                                    f"{topic}: {row['name']} ({size})", 60),
                "color": colors[topic],
                "start": start,
                "end": start + size,
                "coarse": int(row["coarse_topic"]),
                "page": row["page"],
            }
        )  # fmt: skip
        start += size
    prefixes, url_index, url_suffix = _split_urls([safe_url(u) for u in papers["url"].tolist()])
    points: dict[str, Any] = {
        "n": len(papers),
        "grid": GRID,
        "extent": [max(gx, default=0), max(gy, default=0)],  # the largest x and y (the smallest are 0)
        "markerSize": marker_size(len(papers)),
        "legend": len(order) <= MAX_LEGEND_TOPICS,
        "topics": topic_rows,
        "x": gx,
        "y": gy,
        "title": [shorten(t, TITLE_CHARS) for t in papers["title"].tolist()],
        "authors": [short_authors(a) for a in papers["authors"].tolist()],
        "date": [shorten(d, 20) for d in papers["date"].tolist()],
        "dateHistogram": date_histogram(papers["date"]),
        "urlPrefix": prefixes,
        "urlIndex": url_index,
        "url": url_suffix,
        "labels": {
            "fine": _labels(papers, gx, gy, "topic", "topic_name"),
            "coarse": _labels(papers.assign(coarse_name=papers["topic"].map(by_topic["coarse_name"]),
                                            coarse_topic=papers["topic"].map(by_topic["coarse_topic"])),
                              gx, gy, "coarse_topic", "coarse_name") if coarse else [],
        },
    }  # fmt: skip
    points_json = script_json(points)
    abstract_chars = _abstract_chars(len(papers), len(points_json.encode("utf-8")), hover_abstract_chars)
    abstracts = [shorten(a, abstract_chars) if abstract_chars else "" for a in papers["abstract"].tolist()]
    return MapData(points, abstracts, abstract_chars, points_json)


def date_histogram(dates: pd.Series) -> dict[str, Any] | None:
    """Papers per listing date, for the bars under the map; None when no paper has an ISO date.

    Returns:
        ``{"period": "day" | "week" | "month", "start": [...], "end": [...], "count": [...]}``:
        per bar that holds papers, in date order, its first and last day (ISO) and its papers.
        The counts add up to the papers with an ISO date ("Aug 12" and "" are left out).
    """
    stamps, month_only = iso_dates(dates)
    stamps = stamps.dropna()
    if stamps.empty:
        return None
    span = (stamps.max() - stamps.min()).days
    if month_only or span > HISTOGRAM_WEEK_SPAN_MAX:
        period = "month"
        starts = stamps.dt.to_period("M").dt.start_time
    elif span > HISTOGRAM_DAY_SPAN_MAX:
        period = "week"
        starts = stamps - pd.to_timedelta(stamps.dt.weekday, unit="D")
    else:
        period = "day"
        starts = stamps
    counts = starts.value_counts().sort_index()
    first_days = counts.index
    last_days = {
        "day": first_days,
        "week": first_days + pd.Timedelta(days=6),
        "month": first_days + pd.offsets.MonthEnd(0),
    }[period]
    return {
        "period": period,
        "start": [day.strftime("%Y-%m-%d") for day in first_days],
        "end": [day.strftime("%Y-%m-%d") for day in last_days],
        "count": [int(c) for c in counts.to_numpy()],
    }


def _abstract_chars(n_papers: int, used_bytes: int, wanted: int) -> int:
    """``wanted`` abstract characters per paper, or what fits the budget (0 when under MIN_ABSTRACT_CHARS)."""
    if n_papers == 0 or wanted == 0:
        return wanted
    room = (MAP_BYTES_BUDGET - used_bytes) // n_papers - 4  # 4: quotes, comma, the "…"
    if wanted <= room:
        return wanted
    return room if room >= MIN_ABSTRACT_CHARS else 0


def _labels(papers: pd.DataFrame, gx: list[int], gy: list[int], group: str, name: str) -> list[dict[str, Any]]:
    """A label per group of real topics, at the median position of its papers."""
    frame = pd.DataFrame({"g": papers[group].to_numpy(), "name": papers[name].to_numpy(), "x": gx, "y": gy})
    frame = frame[papers["topic"].to_numpy() != OUTLIER_TOPIC]
    labels = []
    for group_id, members in frame.groupby("g", sort=True):
        labels.append(
            {
                "group": int(group_id),
                "x": float(np.median(members["x"])),
                "y": float(np.median(members["y"])),
                "text": f"<b>{plot_text(members['name'].iloc[0], LABEL_CHARS)}</b>",
            }
        )
    return labels
