"""mkdocs hook: fills ``configuration.md`` with the reference generated from the config model.

The marker ``<!-- config-reference -->`` is replaced by ``pipeline.config_doc.reference_markdown()``
at build time, so the page can never repeat a default that the model no longer has. The
``pipeline`` imported is the one beside ``mkdocs.yml`` (a checkout's, not another installed copy).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- config-reference -->"


def on_config(config: Any, **kwargs: Any) -> Any:
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from pipeline.config_doc import reference_markdown

    return markdown.replace(MARKER, reference_markdown())
