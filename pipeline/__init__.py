"""papertopics: topics, maps and per-topic CSVs from piles of research-paper listings.

The stages live in one module each (``parse``, ``embed``, ``cluster``, ``label``,
``report``) and are wired together in ``pipeline.runner``. Importing this package is
cheap: torch, UMAP and BERTopic are imported only by the stages that need them.
"""

__version__ = "0.1.0"
