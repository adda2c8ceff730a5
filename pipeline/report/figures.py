"""Plotly figures for the report, built from plain tables (never from model objects).

Every string that reaches plotly goes through ``plot_text``/``wrapped_plot_text``
first: plotly renders a subset of HTML in hover text, legend names, annotations and
tick labels, so a paper titled ``<b>x</b>`` would otherwise be drawn in bold (and
worse tags could be smuggled in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from pipeline.report.hierarchy import Dendrogram
from pipeline.report.text import plot_text, wrapped_plot_text
from pipeline.schema import OUTLIER_TOPIC

# The keyword grid stays readable (and the page light) up to about this many charts.
MAX_BARCHART_TOPICS = 24
BARCHART_COLUMNS = 4
BARCHART_KEYWORDS = 10
OUTLIER_COLOR = "#c8c8c8"
HISTOGRAM_HEIGHT = 110  # pixels: the date bars under the document map
HOVER_WIDTH = 70  # characters per hover line; plotly hover boxes never wrap by themselves
_PALETTE = tuple(qualitative.D3 + qualitative.Set2 + qualitative.Dark24 + qualitative.Light24)
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def topic_colors(topic_ids: Sequence[int]) -> dict[int, str]:
    """A colour per topic, stable for the same topic ids; outliers are light grey."""
    real = sorted({int(t) for t in topic_ids if int(t) != OUTLIER_TOPIC})
    colors = {topic: _PALETTE[i % len(_PALETTE)] for i, topic in enumerate(real)}
    colors[OUTLIER_TOPIC] = OUTLIER_COLOR
    return colors


def _figure(data: object = None) -> go.Figure:
    """An empty-template figure: plotly.py's default template costs ~40 ms and ~7 KB per figure.

    The few settings taken from it are in ``_base_layout``.
    """
    return go.Figure(data, layout={"template": "none"})


def _base_layout(fig: go.Figure, **layout: object) -> go.Figure:
    defaults: dict[str, object] = {
        "font": {"family": _FONT, "size": 12, "color": "#1f2933"},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "colorway": list(_PALETTE[:10]),
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "hoverlabel": {"font": {"family": _FONT, "size": 12}, "align": "left"},
    }
    fig.update_layout(defaults)
    fig.update_layout(layout)
    # Long tick labels (keywords, topic names) push the plot aside instead of being cut off.
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _hidden_axis() -> dict[str, object]:
    # Layout coordinates have no unit worth reading; ticks would only suggest one.
    return {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}


def _padded_range(values: np.ndarray, pad: float = 0.15) -> list[float] | None:
    """Axis range with room around the outermost bubbles, which plotly would clip."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = float(finite.min()), float(finite.max())
    margin = (high - low) * pad if high > low else 1.0
    return [low - margin, high + margin]


def intertopic_map(topics: pd.DataFrame) -> go.Figure:
    """Topics as bubbles at their (x, y), bubble area proportional to size.

    Args:
        topics: DataFrame with columns topic (int), name (str), size (int), keywords
            (list of str), x, y (float). The outlier row (-1), if present, is left out:
            it is not a topic and has no meaningful position.
    """
    real = topics[topics["topic"] != OUTLIER_TOPIC].sort_values("topic")
    colors = topic_colors(real["topic"].tolist())
    sizes = real["size"].astype(float).to_numpy()
    hover = [
        f"<b>{plot_text(name, 80)}</b><br>topic {int(topic)} · {int(size)} papers<br>"
        + wrapped_plot_text(", ".join(list(keywords)[:BARCHART_KEYWORDS]), HOVER_WIDTH)
        for topic, name, size, keywords in zip(real["topic"], real["name"], real["size"], real["keywords"], strict=True)
    ]
    fig = _figure(
        go.Scatter(
            x=real["x"].to_numpy(dtype=float),
            y=real["y"].to_numpy(dtype=float),
            mode="markers+text",
            text=[str(int(t)) for t in real["topic"]],
            textfont={"size": 11, "color": "#111"},
            marker={
                "size": sizes,
                "sizemode": "area",
                # The largest topic gets a bubble about 70 px across.
                "sizeref": 2.0 * (sizes.max() if len(sizes) else 1.0) / 70.0**2,
                "sizemin": 8,
                "color": [colors[int(t)] for t in real["topic"]],
                "opacity": 0.6,
                "line": {"width": 1, "color": "#444"},
            },
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
        )
    )
    frame = {**_hidden_axis(), "showline": True, "mirror": True, "linecolor": "#ddd"}
    return _base_layout(
        fig,
        xaxis={**frame, "range": _padded_range(real["x"].to_numpy(dtype=float))},
        yaxis={**frame, "range": _padded_range(real["y"].to_numpy(dtype=float))},
        hovermode="closest",
        height=560,
    )


def barchart_topics(topics: pd.DataFrame, limit: int = MAX_BARCHART_TOPICS) -> pd.DataFrame:
    """The (at most ``limit``) largest real topics, largest first, ties by topic number."""
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    return real.sort_values(["size", "topic"], ascending=[False, True], kind="mergesort").head(limit)


def keyword_barcharts(topics: pd.DataFrame, n_keywords: int = BARCHART_KEYWORDS) -> go.Figure:
    """A grid of small horizontal bar charts, one per row of ``topics``, in its order.

    Args:
        topics: DataFrame with columns topic (int), name (str), keywords (list of str),
            keyword_weights (list of float); pick and order the rows with ``barchart_topics``.
        n_keywords: bars per chart, best keywords first.
    """
    n = len(topics)
    cols = max(1, min(BARCHART_COLUMNS, n))
    rows = max(1, math.ceil(n / cols))
    titles = [plot_text(f"{int(t)}: {name}", 28) for t, name in zip(topics["topic"], topics["name"], strict=True)]
    fig = make_subplots(
        figure=_figure(),
        rows=rows,
        cols=cols,
        subplot_titles=titles or None,
        horizontal_spacing=0.16 if cols > 1 else 0.0,
        vertical_spacing=min(0.3 / rows, 0.9 / max(rows - 1, 1)),
    )
    colors = topic_colors(topics["topic"].tolist())
    for i, (topic, keywords, weights) in enumerate(
        zip(topics["topic"], topics["keywords"], topics["keyword_weights"], strict=True)
    ):
        pairs = list(zip(list(keywords), list(weights), strict=False))[:n_keywords]
        pairs.reverse()  # plotly draws the first bar at the bottom; the best keyword goes on top
        fig.add_trace(
            go.Bar(
                x=[float(w) for _, w in pairs],
                y=[plot_text(k, 30) for k, _ in pairs],
                orientation="h",
                marker_color=colors[int(topic)],
                hovertemplate="%{y}: %{x:.3f}<extra></extra>",
                showlegend=False,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_annotations(font_size=11)
    fig.update_xaxes(showgrid=True, gridcolor="#eee", tickfont_size=9)
    fig.update_yaxes(tickfont_size=10)
    return _base_layout(fig, height=max(260, 230 * rows), bargap=0.25, margin={"l": 10, "r": 40, "t": 50, "b": 10})


def topics_over_time(
    shares: pd.DataFrame, names: dict[int, str], colors: dict[int, str], rising: set[int], period: str,
    visible: int = 10,
) -> go.Figure:  # fmt: skip
    """Each real topic's share of the dated papers per period, one line per topic.

    Args:
        shares: DataFrame indexed by topic with one column per period label (0..1).
        names: topic id → name.
        colors: topic id → CSS colour.
        rising: topic ids marked "▲ rising" in the legend.
        period: "day", "week", "month" or "year" (the x axis title).
        visible: the largest topics drawn at first; the others wait in the legend.
    """
    real = shares[shares.index != OUTLIER_TOPIC]
    shown = set(real.sum(axis=1).sort_values(ascending=False, kind="mergesort").index[:visible])
    fig = _figure()
    for topic, row in real.iterrows():
        label = f"{int(topic)}: {names[int(topic)]}" + (" ▲" if topic in rising else "")
        fig.add_trace(
            go.Scatter(
                x=list(real.columns),
                y=[round(100.0 * v, 2) for v in row],
                mode="lines+markers",
                name=plot_text(label, 50),
                line={"color": colors[int(topic)], "width": 3 if topic in rising else 1.5},
                marker={"size": 5},
                visible=True if topic in shown else "legendonly",
                hovertemplate=f"{plot_text(names[int(topic)], 50)}<br>%{{x}}: %{{y:.1f}}%<extra></extra>",
            )
        )
    return _base_layout(
        fig,
        height=460,
        xaxis={"type": "date", "title": {"text": period}},
        yaxis={"title": {"text": "share of the period's papers (%)"}, "gridcolor": "#eee", "rangemode": "tozero"},
        legend={"title": {"text": "Topics (click to show/hide)"}},
        hovermode="closest",
    )


def dendrogram(tree: Dendrogram, names: dict[int, str], colors: dict[int, str]) -> go.Figure:
    """The topic hierarchy: topics as rows on the left, merges at their distance to the right."""
    rows = list(range(len(tree.leaves)))
    merge_hover = [
        f"<b>{plot_text(m.name or 'group', 80)}</b><br>{len(m.topics)} topics: "
        + wrapped_plot_text(", ".join(str(t) for t in m.topics), HOVER_WIDTH, 300)
        + f"<br>distance {m.distance:.3f}"
        for m in tree.merges
    ]
    fig = _figure(
        [
            go.Scatter(x=tree.xs, y=tree.ys, mode="lines", line={"color": "#7b8794", "width": 1.5}, hoverinfo="skip"),
            go.Scatter(
                x=[m.distance for m in tree.merges],
                y=[m.row for m in tree.merges],
                mode="markers",
                marker={"size": 8, "color": "#52606d"},
                hovertext=merge_hover,
                hovertemplate="%{hovertext}<extra></extra>",
            ),
            go.Scatter(
                x=[0.0] * len(tree.leaves),
                y=rows,
                mode="markers",
                marker={"size": 10, "color": [colors.get(t, OUTLIER_COLOR) for t in tree.leaves]},
                hovertext=[plot_text(f"{t}: {names.get(t, '')}", 80) for t in tree.leaves],
                hovertemplate="%{hovertext}<extra></extra>",
            ),
        ]
    )
    return _base_layout(
        fig,
        height=max(280, 24 * len(rows) + 80),
        showlegend=False,
        xaxis={"title": {"text": "distance at which groups merge"}, "gridcolor": "#eee", "zeroline": False},
        yaxis={
            "tickvals": rows,
            "ticktext": [plot_text(f"{t}: {names.get(t, '')}", 45) for t in tree.leaves],
            "autorange": "reversed",
            "showgrid": False,
            "zeroline": False,
        },
        margin={"l": 10, "r": 20, "t": 10, "b": 40},
        hovermode="closest",
    )


def source_split(table: pd.DataFrame, names: dict[int, str], colors: dict[int, str]) -> go.Figure:
    """Each source's papers split by topic, as 100 % stacked horizontal bars.

    Args:
        table: DataFrame indexed by source display name, one int column per topic
            (``tables.source_split``).
        names: topic id → name.
        colors: topic id → CSS colour.
    """
    totals = table.sum(axis=1).replace(0, 1)
    sources = [plot_text(s, 40) for s in table.index]
    fig = _figure()
    for topic in table.columns:
        counts = table[topic].astype(int)
        if counts.sum() == 0:
            continue
        fig.add_trace(
            go.Bar(
                y=sources,
                x=[round(100.0 * c / t, 2) for c, t in zip(counts, totals, strict=True)],
                customdata=counts.tolist(),
                orientation="h",
                name=plot_text(f"{int(topic)}: {names[int(topic)]}" if topic != OUTLIER_TOPIC else names[topic], 50),
                marker_color=colors[int(topic)],
                hovertemplate=f"%{{y}}<br>{plot_text(names[int(topic)], 50)}: %{{customdata}} papers "
                "(%{x:.1f}%)<extra></extra>",
            )
        )
    return _base_layout(
        fig,
        barmode="stack",
        height=max(220, 40 * len(sources) + 120),
        xaxis={"title": {"text": "share of the source's papers (%)"}, "range": [0, 100], "gridcolor": "#eee"},
        yaxis={"autorange": "reversed"},
        legend={"title": {"text": "Topics"}},
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )


def document_map_layout() -> dict[str, object]:
    """The document map's layout; the page adds the traces and labels from its compact data."""
    fig = _base_layout(
        _figure(),
        xaxis=_hidden_axis(),
        yaxis=_hidden_axis(),
        hovermode="closest",
        dragmode="pan",
        margin={"l": 0, "r": 0, "t": 30, "b": 0},  # the top margin holds plotly's toolbar
        legend={
            "itemsizing": "constant",
            "title": {"text": "Topics (click to hide/show)"},
            "x": 1.0,
            "xanchor": "right",
            "y": 1.0,
            "yanchor": "top",
            "bgcolor": "rgba(255,255,255,0.85)",
            "bordercolor": "#e4e7eb",
            "borderwidth": 1,
        },
    )
    return fig.to_plotly_json()["layout"]


def date_histogram_layout() -> dict[str, object]:
    """The layout of the bars under the document map: papers per listing date, brushed to filter.

    Dragging selects a span of dates (``dragmode`` "select", horizontal only); the axes do
    not zoom, so a drag always means "these dates".
    """
    fig = _base_layout(
        _figure(),
        height=HISTOGRAM_HEIGHT,
        dragmode="select",
        selectdirection="h",
        hovermode="closest",
        bargap=0.05,
        showlegend=False,
        xaxis={"type": "date", "fixedrange": True, "showgrid": False, "ticks": "outside"},
        yaxis={"fixedrange": True, "gridcolor": "#eee", "rangemode": "tozero", "nticks": 3},
        margin={"l": 40, "r": 10, "t": 4, "b": 24},
    )
    return fig.to_plotly_json()["layout"]


def document_map(papers: pd.DataFrame, names: dict[int, str], colors: dict[int, str]) -> go.Figure:
    """Every paper at its map position, one trace per topic (click a legend entry to hide it).

    ``papers`` has columns topic (int), x, y (float) and title (str); ``names`` and ``colors``
    map each topic to its name and colour. The notebook's map (``pipeline.Run.map``); the
    report's ``map.html`` draws the same layout in the browser from its compact data.
    """
    fig = go.Figure(layout=document_map_layout())
    for topic, rows in papers.groupby("topic", sort=True):
        topic = int(topic)
        label = plot_text(names[topic])
        fig.add_trace(
            go.Scattergl(
                x=rows["x"].to_numpy(dtype=float),
                y=rows["y"].to_numpy(dtype=float),
                mode="markers",
                name=label if topic == OUTLIER_TOPIC else f"{topic}: {label}",
                marker={"size": 5, "color": colors[topic], "opacity": 0.5 if topic == OUTLIER_TOPIC else 0.85},
                hovertext=[wrapped_plot_text(str(title), HOVER_WIDTH) for title in rows["title"]],
                hoverinfo="text",
            )
        )
    return fig
