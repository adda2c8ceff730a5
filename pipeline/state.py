"""What a run carries to the next one: one generation per successful run, apart from the stage folders.

A feed's history (the topics registry and history, what each run saw, the last clustering
and its pool) is not a cache: a cache may be deleted and recomputed, a history may not.
Each stage declares what it carries (``Stage.carries``); after a whole run succeeded, the
runner commits those files here as a new generation::

    outputs/<run>/state/
        000007/               a generation: what run 7 left for the next run
            generation.json   its number, parent, date, summary, and each file's sha256
            cluster/labels.npy, label/topics_registry.parquet, ...
        current               the number of the generation the next run starts from

A generation is written under a temporary name (``.tmp-*``), every file and the folder
fsynced, and renamed into place; the ``current`` pointer is moved last, atomically, as git
writes its objects first and moves a ref last. A run that fails, however and wherever it
fails (an exception, SIGKILL, Ctrl-C, a full disk), never gets that far: ``current`` still
names what the last successful run left, and the next run is an update of that run.
Invalidation and ``--force`` touch the stage folders only, never this one.

A damaged generation (a file missing, truncated or rewritten, so that its sha256 no longer
matches ``generation.json``) is never a silent reset: loading it raises
``StateDamagedError``, one line naming the file and the last intact generation, or, with
``history.on_damage: previous``, goes on from that generation with a warning.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import OutputError, StateDamagedError
from pipeline.files import atomic_write_bytes, hash_json, json_to_bytes, output_error, sha256_bytes

log = logging.getLogger(__name__)

STATE_DIR = "state"
CURRENT = "current"
MANIFEST = "generation.json"
STATE_FORMAT_VERSION = 1
TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Generation:
    """What ``generation.json`` says: a committed generation of a run folder's state."""

    number: int
    parent: int | None  # the generation the run that made it started from
    created: str
    files: dict[str, str]  # "stage/name" -> sha256
    summary: dict[str, Any]  # counts shown by ``papertopics history`` (papers, topics, run)

    @property
    def content(self) -> str:
        """A hash of what the generation holds: equal for two generations with the same files."""
        return hash_json(self.files)


@dataclass(frozen=True)
class CarriedState:
    """The generation a run starts from, read-only, every file checked against its recorded sha256."""

    generation: Generation
    data: Mapping[str, bytes]  # "stage/name" -> the file's bytes
    notes: tuple[str, ...] = ()  # warnings for the log and the report (a damaged generation skipped)
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def digest(self, stage: str, name: str) -> str | None:
        """The sha256 of a carried file, None when the generation holds no such file."""
        return self.generation.files.get(f"{stage}/{name}")

    def holds(self, stage: str, names: tuple[str, ...] | list[str]) -> bool:
        return all(f"{stage}/{name}" in self.data for name in names)

    def stage_files(self, stage: str) -> dict[str, str]:
        """The files ``stage`` carried into this generation: name -> sha256."""
        prefix = f"{stage}/"
        return {key[len(prefix) :]: digest for key, digest in self.generation.files.items() if key.startswith(prefix)}

    def read_bytes(self, stage: str, name: str) -> bytes:
        return self.data[f"{stage}/{name}"]

    def read_table(self, stage: str, name: str) -> pd.DataFrame:
        key = f"{stage}/{name}"
        if key not in self._tables:
            self._tables[key] = pd.read_parquet(io.BytesIO(self.data[key]), engine="pyarrow")
        return self._tables[key].copy(deep=False)

    def read_array(self, stage: str, name: str) -> np.ndarray:
        return np.load(io.BytesIO(self.data[f"{stage}/{name}"]), allow_pickle=False)

    def read_json(self, stage: str, name: str) -> Any:
        return json.loads(self.data[f"{stage}/{name}"].decode("utf-8"))


class _Damage(Exception):
    """A generation that cannot be trusted: the path and what is wrong with it."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def state_dir(run_dir: Path) -> Path:
    return Path(run_dir) / STATE_DIR


def generation_dir(run_dir: Path, number: int) -> Path:
    return state_dir(run_dir) / f"{number:06d}"


def generation_numbers(run_dir: Path) -> list[int]:
    """The numbers of the generation folders in ``run_dir``, oldest first (damaged ones included)."""
    folder = state_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(int(path.name) for path in folder.iterdir() if path.name.isdigit() and path.is_dir())


def _current_number(run_dir: Path) -> int | None:
    """The generation ``current`` names; None when there is no state yet. Raises _Damage."""
    pointer = state_dir(run_dir) / CURRENT
    try:
        text = pointer.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if generation_numbers(run_dir):
            raise _Damage(pointer, "missing, though generations are there") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _Damage(pointer, f"unreadable ({exc})") from None
    if not text.isdigit():
        raise _Damage(pointer, "does not name a generation")
    return int(text)


def read_generation(run_dir: Path, number: int) -> tuple[Generation, dict[str, bytes]]:
    """A generation and its files' bytes, each checked against its sha256. Raises _Damage."""
    folder = generation_dir(run_dir, number)
    manifest_path = folder / MANIFEST
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        if raw.get("format_version") != STATE_FORMAT_VERSION:
            raise _Damage(manifest_path, f"format {raw.get('format_version')!r}, not {STATE_FORMAT_VERSION}")
        generation = Generation(
            int(raw["number"]), raw["parent"], str(raw["created"]), dict(raw["files"]), dict(raw["summary"])
        )
    except FileNotFoundError:
        raise _Damage(manifest_path, "missing") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _Damage(manifest_path, f"unreadable ({type(exc).__name__})") from None
    if generation.number != number or any(
        Path(name).is_absolute() or ".." in Path(name).parts for name in generation.files
    ):
        raise _Damage(manifest_path, "does not describe this generation")
    data = {}
    for relative, digest in generation.files.items():
        path = folder / relative
        try:
            data[relative] = path.read_bytes()
        except FileNotFoundError:
            raise _Damage(path, "missing") from None
        except OSError as exc:
            raise _Damage(path, f"unreadable ({exc.strerror or exc})") from None
        if sha256_bytes(data[relative]) != digest:
            raise _Damage(path, "damaged: its sha256 is not the one its generation recorded")
    return generation, data


def _last_intact(run_dir: Path, below: int | None) -> tuple[Generation, dict[str, bytes]] | None:
    """The newest generation (under ``below``, when given) whose files are all intact."""
    for number in reversed(generation_numbers(run_dir)):
        if below is not None and number >= below:
            continue
        with contextlib.suppress(_Damage):
            return read_generation(run_dir, number)
    return None


def load_state(run_dir: Path, on_damage: str) -> CarriedState | None:
    """What the last successful run carried, or None for a run folder with no state yet.

    ``on_damage``: "stop" raises StateDamagedError for a damaged generation; "previous" goes on
    from the newest intact generation before it, with a note (and stops when there is none).
    """
    try:
        number = _current_number(run_dir)
        if number is None:
            return None
        generation, data = read_generation(run_dir, number)
        return CarriedState(generation, data)
    except _Damage as damage:
        below = None if damage.path.name == CURRENT else _damaged_number(damage.path, run_dir)
        fallback = _last_intact(run_dir, below)
        if fallback is None:
            raise StateDamagedError(
                f"{damage}; no earlier generation of the run's history is intact: restore the file, or delete "
                f"{state_dir(run_dir)} to start the feed again from its first run"
            ) from None
        good = fallback[0].number
        if on_damage != "previous":
            raise StateDamagedError(
                f"{damage}; the last good generation is {good}: run `papertopics rollback {run_dir} --to {good}`, "
                "or set history.on_damage: previous to go on from it"
            ) from None
        note = f"run history: {damage}; this run goes on from generation {good}, the last intact one"
        log.warning("%s", note)
        return CarriedState(fallback[0], fallback[1], (note,))


def _damaged_number(path: Path, run_dir: Path) -> int | None:
    relative = path.relative_to(state_dir(run_dir)).parts
    return int(relative[0]) if relative and relative[0].isdigit() else None


def commit_generation(
    run_dir: Path, files: Mapping[str, bytes], summary: Mapping[str, Any], parent: CarriedState | None, keep: int
) -> Generation | None:
    """Commit ``files`` ("stage/name" -> bytes) as the new current generation; None when unchanged.

    A run that changed nothing its stages carry (every stage reused) adds no generation.
    Keeps the newest ``keep`` generations, and always the current one.
    """
    hashes = {relative: sha256_bytes(data) for relative, data in sorted(files.items())}
    if parent is not None and hashes == parent.generation.files:
        return None
    folder = state_dir(run_dir)
    number = max(generation_numbers(run_dir), default=0) + 1
    generation = Generation(
        number,
        None if parent is None else parent.generation.number,
        datetime.now(UTC).isoformat(timespec="seconds"),
        hashes,
        dict(summary),
    )
    temporary = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}"
    final = generation_dir(run_dir, number)
    try:
        for relative, data in files.items():
            atomic_write_bytes(temporary / relative, data)  # each file fsynced
        manifest = {"format_version": STATE_FORMAT_VERSION, **generation.__dict__}
        atomic_write_bytes(temporary / MANIFEST, json_to_bytes(manifest))
        for sub in [*sorted({temporary / Path(relative).parent for relative in files}), temporary]:
            _fsync_folder(sub)
        os.replace(temporary, final)
        _fsync_folder(folder)
    except OSError as exc:
        raise output_error(final, exc) from exc
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    set_current(run_dir, number)
    _prune(run_dir, keep, number)
    return generation


def set_current(run_dir: Path, number: int) -> None:
    """Point ``current`` at generation ``number``: the write that makes it the state."""
    atomic_write_bytes(state_dir(run_dir) / CURRENT, f"{number}\n".encode("ascii"))
    _fsync_folder(state_dir(run_dir))


def rollback(run_dir: Path, number: int) -> Generation:
    """Make generation ``number`` current again, after checking every file of it is intact."""
    if number not in generation_numbers(run_dir):
        kept = ", ".join(str(n) for n in generation_numbers(run_dir)) or "none"
        raise StateDamagedError(f"{state_dir(run_dir)}: no generation {number} (kept: {kept})")
    try:
        generation, _ = read_generation(run_dir, number)
    except _Damage as damage:
        raise StateDamagedError(f"{damage}; generation {number} cannot be restored") from None
    set_current(run_dir, number)
    return generation


def history(run_dir: Path) -> list[tuple[int, Generation | None, str | None]]:
    """Every generation folder, oldest first: (number, its generation or None, what is wrong with it)."""
    rows: list[tuple[int, Generation | None, str | None]] = []
    for number in generation_numbers(run_dir):
        try:
            rows.append((number, read_generation(run_dir, number)[0], None))
        except _Damage as damage:
            rows.append((number, None, str(damage)))
    return rows


def current_generation(run_dir: Path) -> int | None:
    """The number ``current`` names, None when absent or unreadable (for listings only)."""
    try:
        return _current_number(run_dir)
    except _Damage:
        return None


def sweep_state(run_dir: Path) -> None:
    """Delete generations a dead run left half-written (``.tmp-*``); called while holding the run's lock."""
    folder = state_dir(run_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(TEMP_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


def _prune(run_dir: Path, keep: int, current: int) -> None:
    numbers = generation_numbers(run_dir)
    for number in numbers[: max(len(numbers) - keep, 0)]:
        if number != current:
            try:
                shutil.rmtree(generation_dir(run_dir, number))
            except OSError as exc:
                raise OutputError(
                    f"{generation_dir(run_dir, number)}: an old generation cannot be deleted ({exc.strerror or exc})"
                ) from exc


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
