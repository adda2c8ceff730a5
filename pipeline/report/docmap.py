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

Above ``MAP_POINTS_CAP`` papers the map draws a seeded uniform sample of that many as points
and every paper as a density layer underneath (``density``), so a million papers open as
quickly as 200,000; the other papers' titles, ids, dates, links, topics and positions go to a
separate script, ``map-papers.js`` (``MapData.rest_js``), that the page loads on the first
search: search still finds every paper, and shows it on the map. The topic pages list each
topic's best papers and the CSVs hold every paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.files import JoinedBytes
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
# Above this many papers the map draws a seeded sample of this many as points and the rest as
# density: WebGL draws 200,000 points in about a second, and the page's data stays near its
# byte budget (a million points would be a 100+ MB page that takes a minute to open).
MAP_POINTS_CAP = 200_000
MAP_POINTS_SEED = 0  # seeds the drawn sample: the same papers give the same map
DENSITY_BINS = 200  # the density layer's cells per side
REST_FILE = "map-papers.js"  # beside map.html: the papers that are not drawn, for search
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
    rest_js: JoinedBytes | None = None  # ``REST_FILE``'s content when not every paper is drawn, else None


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
    joined: pd.DataFrame,
    topics: pd.DataFrame,
    colors: dict[int, str],
    hover_abstract_chars: int,
    coarse: bool,
    points_cap: int = MAP_POINTS_CAP,
) -> MapData:
    """The compact map data for every paper of ``joined``: drawn, or (above ``points_cap``) found by search.

    Args:
        joined: papers with topic, topic_name, score, x, y (``tables.join_tables``).
        topics: prepared topics (``tables.prepare_topics``) with coarse_topic, coarse_name
            and a ``page`` column (relative path of the topic's page).
        colors: topic id → CSS colour.
        hover_abstract_chars: the most abstract characters to keep per paper.
        coarse: whether to include the coarse level's labels (``tables.has_coarse_level``).
        points_cap: the most papers drawn as points; above it a seeded sample of this many is
            drawn, the density layer counts every paper, and ``rest_js`` holds the others.
    """
    if points_cap < 1:
        raise ValueError(f"points_cap must be at least 1, not {points_cap}")
    order = sorted(topics["topic"].astype(int).tolist(), key=lambda t: (t != OUTLIER_TOPIC, t))
    rank = {topic: i for i, topic in enumerate(order)}
    # The papers' order (topic, best score first, id) as row numbers of ``joined``; each column is
    # taken in that order only where it is needed, and the texts only for the rows that use them:
    # a sorted copy of the whole table held every abstract twice (gigabytes at a million papers).
    keys = pd.DataFrame({"_rank": joined["topic"].map(rank).to_numpy(), "score": joined["score"].to_numpy(),
                         "paper_id": joined["paper_id"].to_numpy()})  # fmt: skip
    by_order = keys.sort_values(["_rank", "score", "paper_id"], ascending=[True, False, True], kind="mergesort")
    rows = by_order.index.to_numpy()
    del keys, by_order
    papers = pd.DataFrame({column: joined[column].to_numpy()[rows] for column in ("topic", "topic_name", "x", "y")})
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

    drawn = drawn_rows(len(papers), points_cap)
    shown = _rows(joined, rows[drawn], ("paper_id", "title", "authors", "date"))
    by_topic = topics.set_index("topic")
    counts = papers["topic"].value_counts()
    drawn_counts = papers["topic"].iloc[drawn].value_counts()
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
                "end": start + int(drawn_counts.get(topic, 0)),
                "coarse": int(row["coarse_topic"]),
                "page": row["page"],
            }
        )  # fmt: skip
        start += int(drawn_counts.get(topic, 0))
    all_urls = [safe_url(u) for u in joined["url"].take(rows).tolist()]
    prefixes, url_index, url_suffix = _split_urls(all_urls)
    del all_urls
    gx_all, gy_all = np.asarray(gx), np.asarray(gy)
    points: dict[str, Any] = {
        "n": len(shown),
        "total": len(papers),
        "grid": GRID,
        "extent": [max(gx, default=0), max(gy, default=0)],  # the largest x and y (the smallest are 0)
        "markerSize": marker_size(len(shown)),
        "legend": len(order) <= MAX_LEGEND_TOPICS,
        "topics": topic_rows,
        "x": gx_all[drawn].tolist(),
        "y": gy_all[drawn].tolist(),
        "id": [shorten(str(i), TITLE_CHARS) for i in shown["paper_id"].tolist()],
        "title": [shorten(t, TITLE_CHARS) for t in shown["title"].tolist()],
        "authors": [short_authors(a) for a in shown["authors"].tolist()],
        "date": [shorten(d, 20) for d in shown["date"].tolist()],
        "dateHistogram": date_histogram(joined["date"].take(rows)),
        "urlPrefix": prefixes,
        "urlIndex": [url_index[i] for i in drawn.tolist()],
        "url": [url_suffix[i] for i in drawn.tolist()],
        "density": density(gx_all, gy_all) if len(shown) < len(papers) else None,
        "restFile": REST_FILE if len(shown) < len(papers) else None,
        "labels": {
            "fine": _labels(papers, gx, gy, "topic", "topic_name"),
            "coarse": _labels(papers.assign(coarse_name=papers["topic"].map(by_topic["coarse_name"]),
                                            coarse_topic=papers["topic"].map(by_topic["coarse_topic"])),
                              gx, gy, "coarse_topic", "coarse_name") if coarse else [],
        },
    }  # fmt: skip
    points_json = script_json(points)
    abstract_chars = _abstract_chars(len(shown), len(points_json.encode("utf-8")), hover_abstract_chars)
    abstracts = [
        shorten(a, abstract_chars) if abstract_chars else "" for a in joined["abstract"].take(rows[drawn]).tolist()
    ]
    rest_js = None
    if len(shown) < len(papers):
        rest = np.setdiff1d(np.arange(len(papers)), drawn)
        rank_of = papers["topic"].map(rank).to_numpy()
        hidden = _rows(joined, rows[rest], ("paper_id", "title", "date"))
        # Written key by key, each key's list made, encoded and let go before the next (the whole
        # dict's lists and its JSON text at once were the report's peak at a million papers).
        rest_parts: list[tuple[str, Callable[[], object]]] = [
            ("n", lambda: len(rest)),
            ("topicIndex", lambda: rank_of[rest].tolist()),
            ("x", lambda: gx_all[rest].tolist()),
            ("y", lambda: gy_all[rest].tolist()),
            ("id", lambda: [shorten(str(i), TITLE_CHARS) for i in hidden["paper_id"].tolist()]),
            ("title", lambda: [shorten(t, TITLE_CHARS) for t in hidden["title"].tolist()]),
            ("date", lambda: [shorten(d, 20) for d in hidden["date"].tolist()]),
            ("urlIndex", lambda: [url_index[i] for i in rest.tolist()]),
            ("url", lambda: [url_suffix[i] for i in rest.tolist()]),
        ]
        rest_js = JoinedBytes((b"window.papertopicsMapRest = ", *script_json_object_parts(rest_parts), b";\n"))
    return MapData(points, abstracts, abstract_chars, points_json, rest_js)


def _rows(joined: pd.DataFrame, rows: np.ndarray, columns: tuple[str, ...]) -> pd.DataFrame:
    """``columns`` of ``joined`` at the positions ``rows``, in that order, with a fresh index."""
    return pd.DataFrame({column: joined[column].take(rows).reset_index(drop=True) for column in columns})


def script_json_object_parts(items: list[tuple[str, Callable[[], object]]]) -> Iterator[bytes]:
    """``pages.script_json`` of the object {key: make()} as UTF-8 parts, one value made at a time.

    ``b"".join`` of the parts is ``script_json(dict)``'s bytes: the object's separators are the
    compact ones it uses, and its escapes never span two parts (each is one character).
    """
    yield b"{"
    for i, (key, make) in enumerate(items):
        yield (("," if i else "") + script_json(key) + ":" + script_json(make())).encode("utf-8")
    yield b"}"


def drawn_rows(n_papers: int, points_cap: int) -> np.ndarray:
    """Rows drawn as points, ascending: all of them up to ``points_cap``, else a seeded uniform sample of that many."""
    if n_papers <= points_cap:
        return np.arange(n_papers, dtype=np.int64)
    chosen = np.random.default_rng(MAP_POINTS_SEED).choice(n_papers, size=points_cap, replace=False)
    return np.sort(chosen).astype(np.int64)


def density(gx: np.ndarray, gy: np.ndarray) -> dict[str, Any]:
    """Papers per cell of a ``DENSITY_BINS`` x ``DENSITY_BINS`` grid over the map, for a heatmap under the points.

    gx, gy: every paper's grid coordinates (0..GRID). Returns ``{"x0", "dx", "z"}``: the first
    cell's centre, the cell width (grid units) and the counts, rows = y, columns = x, empty cells
    as None (transparent).
    """
    edges = np.linspace(0, GRID, DENSITY_BINS + 1)
    counts, _, _ = np.histogram2d(gy, gx, bins=[edges, edges])
    dx = GRID / DENSITY_BINS
    z = [[int(c) if c else None for c in row] for row in counts.astype(np.int64).tolist()]
    return {"x0": dx / 2, "dx": dx, "z": z}


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
