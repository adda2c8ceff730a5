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

from pipeline.report.text import plot_text, safe_url, wrapped_plot_text
from pipeline.schema import OUTLIER_TOPIC

# The keyword grid stays readable (and the page light) up to about this many charts.
MAX_BARCHART_TOPICS = 24
BARCHART_COLUMNS = 4
BARCHART_KEYWORDS = 10
OUTLIER_COLOR = "#c8c8c8"
HOVER_WIDTH = 70  # characters per hover line; plotly hover boxes never wrap by themselves
_PALETTE = tuple(qualitative.D3 + qualitative.Set2 + qualitative.Dark24 + qualitative.Light24)
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def topic_colors(topic_ids: Sequence[int]) -> dict[int, str]:
    """A colour per topic, stable for the same topic ids; outliers are light grey."""
    real = sorted({int(t) for t in topic_ids if int(t) != OUTLIER_TOPIC})
    colors = {topic: _PALETTE[i % len(_PALETTE)] for i, topic in enumerate(real)}
    colors[OUTLIER_TOPIC] = OUTLIER_COLOR
    return colors


def _base_layout(fig: go.Figure, **layout: object) -> go.Figure:
    defaults: dict[str, object] = {
        "template": "plotly_white",
        "font": {"family": _FONT, "size": 12, "color": "#1f2933"},
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "hoverlabel": {"font": {"family": _FONT, "size": 12}, "align": "left"},
    }
    fig.update_layout({**defaults, **layout})
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


def _marker_size(n_papers: int) -> int:
    """Big dots for a page of papers, small ones for tens of thousands (they would hide each other)."""
    return 10 if n_papers < 300 else 7 if n_papers < 5_000 else 5 if n_papers < 30_000 else 4


def _legend_name(topic: int, name: str, size: int) -> str:
    return plot_text(f"{name} ({size})" if topic == OUTLIER_TOPIC else f"{topic}: {name} ({size})", 60)


def document_map(points: pd.DataFrame, hover_abstract_chars: int) -> go.Figure:
    """One dot per paper, one WebGL trace per topic so the legend toggles topics.

    Args:
        points: DataFrame with columns x, y (float), topic (int), topic_name, title,
            abstract, url (str); one row per paper.
        hover_abstract_chars: how much of the abstract the hover box shows (0 for none).

    Outliers are drawn first (underneath, in grey); topic names sit at the median
    position of their papers. Each point's ``customdata`` is its url when that is a
    plain http(s) url, else "", for the click handler of the map page.
    """
    colors = topic_colors(points["topic"].tolist())
    fig = go.Figure()
    order = sorted(points["topic"].unique().tolist(), key=lambda t: (t != OUTLIER_TOPIC, t))
    annotations = []
    for topic in order:
        group = points[points["topic"] == topic]
        name = str(group["topic_name"].iloc[0])
        hover = [
            _paper_hover(title, abstract, name, hover_abstract_chars)
            for title, abstract in zip(group["title"], group["abstract"], strict=True)
        ]
        is_outlier = topic == OUTLIER_TOPIC
        fig.add_trace(
            go.Scattergl(
                x=group["x"].to_numpy(dtype=float),
                y=group["y"].to_numpy(dtype=float),
                mode="markers",
                name=_legend_name(int(topic), name, len(group)),
                legendrank=1 if not is_outlier else 10_000,
                marker={
                    "size": _marker_size(len(points)) - (2 if is_outlier else 0),
                    "color": colors[int(topic)],
                    "opacity": 0.5 if is_outlier else 0.85,
                    "line": {"width": 0},
                },
                hovertext=hover,
                hovertemplate="%{hovertext}<extra></extra>",
                customdata=[safe_url(url) for url in group["url"]],
            )
        )
        if not is_outlier:
            annotations.append(
                {
                    "x": float(np.median(group["x"])),
                    "y": float(np.median(group["y"])),
                    "text": f"<b>{plot_text(name, 40)}</b>",
                    "showarrow": False,
                    "font": {"size": 12, "color": "#111"},
                    "bgcolor": "rgba(255,255,255,0.75)",
                    "borderpad": 2,
                }
            )
    return _base_layout(
        fig,
        xaxis=_hidden_axis(),
        yaxis=_hidden_axis(),
        annotations=annotations,
        hovermode="closest",
        legend={"itemsizing": "constant", "title": {"text": "Topics (click to hide/show)"}},
    )


def _paper_hover(title: str, abstract: str, topic_name: str, abstract_chars: int) -> str:
    lines = [f"<b>{wrapped_plot_text(title or '(untitled)', HOVER_WIDTH, 300)}</b>"]
    lines.append(f"<i>{plot_text(topic_name, 80)}</i>")
    if abstract_chars > 0 and abstract:
        lines.append(wrapped_plot_text(abstract, HOVER_WIDTH, abstract_chars))
    return "<br>".join(lines)


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
    fig = go.Figure(
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
        title={"text": "Intertopic distance map", "x": 0.01},
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
