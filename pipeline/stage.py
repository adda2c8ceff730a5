"""What a stage is: the one interface the runner loops over.

A stage declares its name, the artifacts of earlier stages it reads (their hashes key its
cache), the artifacts it writes, the slice of the config its output depends on, any other
inputs of its key (the input files, the embedding model), and its run function. Each stage
module in ``pipeline/stages/`` declares one ``STAGE``; ``pipeline.stages.STAGES`` lists
them in order, and ``pipeline.runner`` reuses or computes each without knowing which it is.

A run function reads its inputs from ``context.store``, which lets it read only the artifacts
it declares (``pipeline.stage_store``), calls the stage's pure functions and returns the
bytes of its artifacts and a few counts for the progress line and the manifest. Its cache key
holds the hash of its module's import closure (``pipeline.code_hash``): no version number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pipeline.config import RunConfig
from pipeline.engine import Engine
from pipeline.sources import SourceFile
from pipeline.stage_store import StageStore
from pipeline.store import ArtifactStore, StageRecord

StageResult = tuple[dict[str, bytes], dict[str, Any]]  # (artifact name -> bytes, counts)
ProgressCallback = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    """Progress goes nowhere when no one watches the run."""


@dataclass
class StageContext:
    """What a stage's run function gets besides the config: the store, the inputs, its history."""

    config: RunConfig
    store: StageStore  # reads only the stage's declared inputs and its own outputs
    sources: list[SourceFile]
    today: date  # the run's day (UTC), read once per run: what "the latest past Feb 10" and "future" mean
    # Where the stage's parallel parts run: the run's engine (``pipeline.engine.run_engine``), shared by its stages.
    engine: Engine
    # What this stage recorded the last time it finished, kept before a recompute invalidated it.
    previous: StageRecord | None = None
    forced: bool = False  # the user asked to recompute this stage from scratch (--force)
    stage_seconds: Mapping[str, float] = field(default_factory=dict)  # of the stages before it, this run
    progress: ProgressCallback = _no_progress


def _no_extra_key(context: StageContext) -> list[str]:
    return []


def _always_intact(context: StageContext) -> bool:
    return True


def _no_manifest_entries(store: ArtifactStore) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline, as the runner sees it."""

    name: str
    inputs: tuple[tuple[str, str], ...]  # (stage, artifact) pairs whose hashes key this stage
    outputs: tuple[str, ...]  # the artifacts it writes into its folder
    config_slice: Callable[[RunConfig], dict[str, Any]]  # the settings its output depends on
    run: Callable[[StageContext], StageResult]
    # The module declaring the stage (its ``__name__``): its cache key holds the hash of that
    # module's import closure (``pipeline.code_hash``), which a wrapped ``run`` keeps.
    module: str
    # Inputs of its key that are not artifacts (the input files' hashes, the embedding model).
    extra_key: Callable[[StageContext], list[str]] = _no_extra_key
    # Whether what the stage put outside its folder is still there (the report's pages).
    intact: Callable[[StageContext], bool] = _always_intact
    # What the run's manifest.json shows of the stage's outputs, beside its status and counts.
    manifest_entries: Callable[[ArtifactStore], dict[str, Any]] = _no_manifest_entries
    # Whether its run and key read the input files' bytes (``StageContext.sources``); the others
    # get none, and the runner lets the bytes go after the last stage that reads them (1.7 GB at
    # a million papers, held through every later stage before).
    reads_sources: bool = False
    # Whether it may hand parts of its work to ``StageContext.engine``; the runner closes the Dask
    # cluster the stage started when it ends, so no later stage inherits its workers' memory.
    uses_engine: bool = False
