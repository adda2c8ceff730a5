"""Making untrusted text safe for the two places the report shows it: plotly text and links.

HTML pages get their escaping from Jinja's autoescape; these helpers cover what
autoescape cannot see: strings handed to plotly (which renders a subset of HTML tags
in hover text, legend names, annotations and tick labels) and the hrefs we emit.
"""

from __future__ import annotations

import html
import textwrap

from pipeline.schema import HTTP_URL


def safe_url(url: object) -> str:
    """``url`` when it is a plain http(s) url, else "" (javascript:, data:, relative, ...)."""
    if not isinstance(url, str):
        return ""
    url = url.strip()
    return url if HTTP_URL.fullmatch(url) else ""


def shorten(text: str, max_chars: int) -> str:
    """``text`` with its white space collapsed, cut to at most ``max_chars`` characters, ending in "…" when cut."""
    # Collapsing white space only ever shortens a text, so when a prefix already collapses to
    # more than max_chars the cut is the same as the whole text's: a 5,000-character abstract
    # shown in 240 is not split into words end to end (75,000 abstracts: 1.5 s saved).
    prefix = text[: 2 * max_chars + 64]
    collapsed = " ".join(prefix.split())
    if len(prefix) < len(text) and len(collapsed) <= max_chars:
        collapsed = " ".join(text.split())
    if len(collapsed) <= max_chars:
        return collapsed
    return collapsed[: max(max_chars - 1, 0)].rstrip() + "…" if max_chars > 0 else ""


def plot_text(text: object, max_chars: int | None = None) -> str:
    """Escape ``text`` for plotly, which shows ``&lt;`` as "<" but parses a raw "<b>" as a tag.

    Only &, < and > are escaped: plotly.js decodes ``&lt;``/``&gt;``/``&amp;`` and numeric
    references but not ``&quot;`` (it would show literally), and a quote is harmless
    in plotly text because attributes only exist inside tags, which need a "<".
    """
    text = "" if text is None else str(text)
    if max_chars is not None:
        text = shorten(text, max_chars)
    return html.escape(text, quote=False)


def wrapped_plot_text(text: object, width: int, max_chars: int | None = None) -> str:
    """Escaped text broken into ``<br>``-joined lines, since plotly hover boxes never wrap."""
    text = "" if text is None else " ".join(str(text).split())
    if max_chars is not None:
        text = shorten(text, max_chars)
    # Wrap the raw text, then escape each line: wrapping escaped text could split "&lt;".
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(text, width))
