"""HTML pages of the report, rendered from Jinja templates with autoescape on.

Figures arrive as ``go.Figure`` objects and are turned into ``<div>`` snippets here
(with fixed ids, so the same figure always gives the same bytes); plotly.js itself is
never inlined or fetched from a CDN: each page loads it from ``assets/`` beside it.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
import plotly.graph_objects as go
import plotly.offline
from markupsafe import Markup

import pipeline

ASSETS_DIR = "assets"

# Opens the clicked paper in a new tab. The url was already filtered to http(s) in
# Python; it is checked again here so a hand-edited page cannot turn it into javascript:.
MAP_CLICK_SCRIPT = """
var plot = document.getElementById('{plot_id}');
plot.on('plotly_click', function (event) {
  var point = event && event.points && event.points[0];
  var url = point ? point.customdata : null;
  if (typeof url === 'string' && /^https?:\\/\\//i.test(url)) {
    window.open(url, '_blank', 'noopener,noreferrer');
  }
});
"""


def plotly_asset_path() -> str:
    """Relative path of the plotly.js bundle, named by its version (cache-safe, one per run)."""
    return f"{ASSETS_DIR}/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"


def plotly_asset() -> bytes:
    """The plotly.js bundle that ships with the installed plotly package."""
    return plotly.offline.get_plotlyjs().encode("utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def figure_div(fig: go.Figure, div_id: str, *, height: str, post_script: str | None = None) -> Markup:
    """A figure as a ``<div>`` + inline script, without plotly.js (the page loads it once)."""
    snippet = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,  # plotly would pick a random uuid, making pages differ run to run
        post_script=post_script,
        default_height=height,
        config={"displaylogo": False, "responsive": True, "scrollZoom": True},
    )
    # plotly serialises the figure as JSON with "<", ">" and "/" escaped as \\uXXXX, so text
    # from the inputs cannot close the script element; the snippet is safe to embed.
    return Markup(snippet)


def render(template: str, context: dict[str, Any]) -> bytes:
    """Render one template to UTF-8 bytes; ``version`` is always available to it."""
    page = _environment().get_template(template).render(version=pipeline.__version__, **context)
    return page.encode("utf-8")


def render_figure_page(
    *, page: str, heading: str, intro: str, sections: list[dict[str, Any]], common: dict[str, Any], wide: bool
) -> bytes:
    """A page of figures; ``sections`` are dicts of heading, note and div (each may be empty)."""
    return render(
        "figures.html",
        {
            **common,
            "page": page,
            "heading": heading,
            "intro": intro,
            "sections": sections,
            "plotly_src": plotly_asset_path(),
            "main_class": "wide" if wide else "",
        },
    )
