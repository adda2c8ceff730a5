"""Topic quality of a finished run, recomputed from its stored tables (``papertopics evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.stages import STAGE_NAMES
from pipeline.stages.label import run_metrics
from pipeline.store import ArtifactStore


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Recompute the topic-quality metrics of a finished run from its stored tables."""
    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    if store.finished("parse") is None or store.finished("label") is None:
        raise InputError(f"{run_dir}: not a finished papertopics run (no finished label stage in it)")
    return run_metrics(
        store.read_table("parse", "papers.parquet"),
        store.read_table("label", "assignments.parquet"),
        store.read_table("label", "topics.parquet"),
    )
