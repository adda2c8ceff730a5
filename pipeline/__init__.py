"""papertopics: topics, maps and per-topic CSVs from piles of research-paper listings.

From Python (a notebook, a script)::

    import pipeline
    r = pipeline.run("configs/default.yaml")   # or pipeline.open_run("outputs/default")
    r.topics.head()

``run``, ``open_run``, ``Run`` and ``Topic`` are defined in ``pipeline.api`` and imported
from there on first use, so ``import pipeline`` stays cheap (no pandas, no pydantic): the
command line imports it too. The stages live in ``pipeline.stages`` and their own packages;
torch, UMAP and BERTopic are imported only by the stages that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Run", "Topic", "__version__", "open_run", "run"]

if TYPE_CHECKING:
    from pipeline.api import Run, Topic, open_run, run

_API = frozenset({"Run", "Topic", "open_run", "run"})


def __getattr__(name: str) -> Any:
    """The public API, imported from ``pipeline.api`` when first asked for (PEP 562)."""
    if name in _API:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
