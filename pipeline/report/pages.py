"""HTML pages of the report, rendered from Jinja templates with autoescape on.

Figures arrive as ``go.Figure`` objects and are turned into ``<div>`` snippets here
(with fixed ids, so the same figure always gives the same bytes); plotly.js itself is
never inlined or fetched from a CDN: each page loads it from ``assets/`` beside it.

Every page carries a Content-Security-Policy that allows its own inline scripts (by
their SHA-256, computed after rendering), the local plotly.js file and nothing from
the network: if an input text ever slipped past the escaping, the browser would still
refuse to run it, and no page can fetch anything.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from typing import Any

import jinja2
import plotly.graph_objects as go
import plotly.offline
from markupsafe import Markup

import pipeline
from pipeline.schema import BIDI_CONTROLS

ASSETS_DIR = "assets"
NONE = "'none'"
_CSP_PLACEHOLDER = "papertopics-csp-placeholder"
# Inline scripts that run: no src attribute and not a JSON data block.
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", re.DOTALL)
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def plotly_asset_path() -> str:
    """Relative path of the plotly.js bundle, named by its version (cache-safe, one per run)."""
    return f"{ASSETS_DIR}/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"


def plotly_asset() -> bytes:
    """The plotly.js bundle that ships with the installed plotly package."""
    return plotly.offline.get_plotlyjs().encode("utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env


def figure_div(fig: go.Figure, div_id: str, *, height: str) -> Markup:
    """A figure as a ``<div>`` + inline script, without plotly.js (the page loads it once)."""
    snippet = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,  # plotly would pick a random uuid, making pages differ run to run
        default_height=height,
        config=PLOTLY_CONFIG,
    )
    # plotly serialises the figure as JSON with "<", ">" and "/" escaped as \\uXXXX, so text
    # from the inputs cannot close the script element; the snippet is safe to embed.
    return Markup(snippet)


def script_json(value: object) -> Markup:
    """``value`` as JSON that is safe inside a ``<script>`` element (no "<", ">", "&", U+2028/9)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return Markup(text)


def template_text(name: str) -> Markup:
    """A static file from the templates folder (a script or a stylesheet), as is."""
    return Markup(_environment().loader.get_source(_environment(), name)[0])  # type: ignore[union-attr]


def _csp(page: str, *, plotly_src: str | None) -> str:
    hashes = sorted(
        {"'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"
         for body in _INLINE_SCRIPT.findall(page)}
    )  # fmt: skip
    scripts = " ".join(hashes)
    if plotly_src:
        # The local plotly.js file (from file://, 'self' is the page's folder); its WebGL traces
        # compile their drawing code with new Function (regl), hence 'unsafe-eval'.
        scripts += " 'self' 'unsafe-eval'"
    policy = [
        "default-src 'none'",
        f"script-src {scripts.strip() or NONE}",
        "style-src 'unsafe-inline'",
        "img-src data: blob:",
        "font-src data:",
        "connect-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
    return "; ".join(policy)


def render(template: str, context: dict[str, Any], *, root: str = "", plotly_src: str | None = None) -> bytes:
    """Render one template to UTF-8 bytes.

    Args:
        template: file name in ``templates/``.
        context: the template's variables; ``version``, ``root`` (the prefix that leads
            back to the report's top folder, "" or "../") and ``plotly_src`` are added.
        root: "" for pages at the top of the report, "../" for those in ``topics/``.
        plotly_src: the page's relative path to plotly.js, when it draws figures.
    """
    page = (
        _environment()
        .get_template(template)
        .render(version=pipeline.__version__, root=root, plotly_src=plotly_src, csp=_CSP_PLACEHOLDER, **context)
    )
    # No template holds a bidirectional control: any in the page came from a text (a name, a title).
    page = BIDI_CONTROLS.sub("", page)
    page = page.replace(_CSP_PLACEHOLDER, _csp(page, plotly_src=plotly_src), 1)
    return page.encode("utf-8")
