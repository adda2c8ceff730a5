"""The artifact store: the only code that decides where results live and how they are written.

Layout of one run (``outputs/<run>/``)::

    01_parse/ … 05_report/   one folder per stage, numbered in pipeline order; each holds the
                             artifacts its stage declares (``pipeline/stages/``: parquet tables,
                             .npy arrays, JSON) and ``_stage.json``, the stage's record
    index.html, map.html, topics.html, topics/, assets/, papers.csv, topics.csv, metrics.json
                             the report, published by ``publish_report``
    manifest.json            the run's manifest (``write_manifest``)
    state/                   what runs carry to the next one, one generation per successful run
                             (``pipeline.state``): never a cache, never invalidated here
    .lock                    held while a run writes here (``lock``)

and, shared by every run under one output folder, ``<output_dir>/.cache/<namespace>/``: the
sub-results stages keep between runs (``MemoStore``: vectors, tokens, term counts, c-TF-IDF).

Every file is written to a temporary name and renamed into place, so a run killed at any
moment never leaves a half-written artifact under its final name. ``_stage.json`` is
written last and records the stage's cache key and the hashes of its outputs: a stage
folder without it, or with another key, is never trusted. A write that fails (disk full,
read-only folder, a file where a folder should be) raises ``OutputError``, one line naming
the path; what was there before is left as it was.

One run at a time writes a run folder: ``lock()`` holds an exclusive ``flock`` on
``<run>/.lock``, which the kernel releases when the process ends in any way (SIGKILL
included), so a dead run never blocks the next one. The next run then sweeps what the
dead one left half-done (temporary files, a report staging folder).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import OutputError, PapertopicsError
from pipeline.files import (
    TEMP_SUFFIX,
    JoinedBytes,
    atomic_write_bytes,
    hash_json,
    json_to_bytes,
    keep_or_write,
    one_chunk_columns,
    output_error,
    sha256_bytes,
)
from pipeline.memo import MemoStore
from pipeline.run_lock import run_folder_lock

# Bump when the layout or the meaning of a stored artifact changes: older folders are recomputed.
STORE_FORMAT_VERSION = 1
STAGE_MARKER = "_stage.json"
MANIFEST = "manifest.json"
# Tables of up to this many rows stay read from one stage to the next (``forget_tables``).
KEPT_TABLE_MAX_ROWS = 100_000
STAGING_PREFIX = ".report-staging-"
RETIRED_INFIX = ".old-"  # ".topics.old-1a2b3c4d": the previous report's folder, being replaced


def stage_cache_key(stage: str, code: str, config_slice: Mapping[str, Any], input_hashes: list[str]) -> str:
    """Content key of a stage: its name, the hash of its code (``pipeline.code_hash``), config slice and inputs."""
    return hash_json(
        {
            "stage": stage,
            "code": code,
            "store_format": STORE_FORMAT_VERSION,
            "config": dict(config_slice),
            "inputs": list(input_hashes),
        }
    )


@dataclass(frozen=True)
class StageRecord:
    """What ``_stage.json`` says about a finished stage."""

    stage: str
    key: str
    output_hashes: dict[str, str]
    seconds: float
    counts: dict[str, Any]
    # For a stage that carries state: the content hash of the history generation it started
    # from (``pipeline.state.Generation.content``), None for none.
    state_from: str | None = None


class ArtifactStore:
    """Paths, formats, atomic writes and stage markers for one run folder."""

    def __init__(self, run_dir: Path, cache_dir: Path, stage_names: Sequence[str]):
        self.run_dir = Path(run_dir)
        self.cache_dir = Path(cache_dir)
        # The stages in pipeline order (``pipeline.stages.STAGE_NAMES``): they name and number the folders.
        self.stage_names = tuple(stage_names)
        # Sub-results stages keep between runs (``memo`` / ``memo_rows``), shared by all runs here.
        self.cache = MemoStore(self.cache_dir)
        # Tables read during a stage, by path and columns, with the file's size and modification time
        # (a stage's helpers may read the papers twice; 0.3 s each at 75k papers).
        self._tables: dict[tuple[Path, tuple[str, ...] | None], tuple[tuple[int, int, int], pd.DataFrame]] = {}

    # -- stage folders ---------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / f"{self.stage_names.index(stage) + 1:02d}_{stage}"

    def own_stage_dir(self, stage: str) -> Path:
        """The stage's folder, for writing or deleting in it; OutputError when it is a symbolic link.

        A link would send the stage's writes (and the marker's deletion) to wherever it points.
        """
        folder = self.stage_dir(stage)
        if folder.is_symlink():
            raise OutputError(
                f"{folder}: is a symbolic link; a stage folder must be a plain folder of this run "
                "(delete the link and run again; what it points to was left as it was)"
            )
        return folder

    def finished(self, stage: str) -> StageRecord | None:
        """The stage's record if it finished completely under this store format, else None."""
        if self.stage_dir(stage).is_symlink():
            return None  # another folder's files are never this run's stage
        marker = self.stage_dir(stage) / STAGE_MARKER
        try:
            raw = json.loads(marker.read_text(encoding="utf-8"))
            if raw.get("format_version") != STORE_FORMAT_VERSION:
                return None
            record = StageRecord(
                raw["stage"], raw["key"], raw["output_hashes"], raw["seconds"], raw.get("counts", {}),
                raw.get("state_from"),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing, unreadable, or not a marker this store wrote: recompute
        # An output deleted by hand (or never renamed into place) makes the stage untrusted.
        if not all((self.stage_dir(stage) / name).is_file() for name in record.output_hashes):
            return None
        return record

    def invalidate(self, stage: str) -> None:
        """Forget that a stage finished, before it is recomputed."""
        marker = self.own_stage_dir(stage) / STAGE_MARKER
        try:
            marker.unlink(missing_ok=True)
        except OSError as exc:
            raise output_error(marker, exc) from exc

    def save_stage(
        self,
        stage: str,
        key: str,
        outputs: Mapping[str, bytes],
        seconds: float,
        counts: Mapping[str, Any],
        state_from: str | None = None,
    ) -> StageRecord:
        """Write a stage's outputs, then its marker, each atomically; the marker goes last."""
        folder = self.own_stage_dir(stage)
        for name, data in outputs.items():
            atomic_write_bytes(folder / name, data)
        hashes = {name: sha256_bytes(data) for name, data in outputs.items()}
        record = StageRecord(stage, key, hashes, seconds, dict(counts), state_from)
        marker = {"format_version": STORE_FORMAT_VERSION, **record.__dict__}
        atomic_write_bytes(folder / STAGE_MARKER, json_to_bytes(marker))
        return record

    # -- reading artifacts -------------------------------------------------------------
    def read_table(self, stage: str, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A table artifact, or only its ``columns``; read once per stage (see :meth:`forget_tables`)."""
        import pyarrow as pa

        path = self.stage_dir(stage) / name
        info = path.stat()
        version = (info.st_ino, info.st_size, info.st_mtime_ns)  # a rewrite is a new file (atomic rename)
        wanted = None if columns is None else tuple(columns)
        kept = self._tables.get((path, wanted))
        if kept is None or kept[0] != version:
            frame = pd.read_parquet(path, engine="pyarrow", columns=None if wanted is None else list(wanted))
            kept = (version, one_chunk_columns(frame))
            self._tables[path, wanted] = kept
            # The reader's buffers go back to the system: the papers at 1M held 2.5 GB of RSS read, 1.9 GB after.
            pa.default_memory_pool().release_unused()
        # A new frame over the same columns: under copy-on-write a caller's change copies first.
        return kept[1].copy(deep=False)

    def table_batches(self, stage: str, name: str, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """A table artifact's ``columns``, ``rows`` rows at a time, in order: never the whole table at once."""
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.stage_dir(stage) / name) as table:
            for batch in table.iter_batches(batch_size=rows, columns=list(columns)):
                yield batch.to_pandas()

    def table_rows(self, stage: str, name: str) -> int:
        """How many rows a table artifact has (its footer's count: nothing else is read)."""
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.stage_dir(stage) / name) as table:
            return int(table.metadata.num_rows)

    def forget_tables(self) -> None:
        """Let go of the tables read so far but the small ones (``KEPT_TABLE_MAX_ROWS``): the runner, after each stage.

        The papers table at a million papers is ~2.7 GB once read; kept from one stage to the next,
        it would sit beside a stage that reads only some of its columns, or none. At 75,000 papers
        (130 MB) the label stage's copy serves the report too (a second read cost 0.6 s).
        """
        self._tables = {key: kept for key, kept in self._tables.items() if len(kept[1]) <= KEPT_TABLE_MAX_ROWS}

    def read_array(self, stage: str, name: str, mapped: bool = False) -> np.ndarray:
        """An array artifact; ``mapped``: a read-only memory map of its file (rows read when touched)."""
        return np.load(self.stage_dir(stage) / name, allow_pickle=False, mmap_mode="r" if mapped else None)

    def read_json(self, stage: str, name: str) -> Any:
        return json.loads((self.stage_dir(stage) / name).read_text(encoding="utf-8"))

    # -- the report's files ------------------------------------------------------------
    def publish_report(self, files: Mapping[str, bytes | JoinedBytes]) -> None:
        """Put the report's files at the top of the run folder, replacing the previous report.

        The new files are first written in full to a staging folder beside the old report,
        so a failure while writing (disk full, killed run) leaves the previous report intact.
        """
        staging = self.run_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
        top_level = sorted({Path(relative).parts[0] for relative in files})
        previous = any((self.run_dir / name).exists() for name in top_level)
        kept = "the previous report is left as it was" if previous else "no report was published"
        run_root = self.run_dir.resolve()
        try:
            for relative, data in files.items():
                target = (staging / relative).resolve()
                if staging.resolve() not in target.parents:
                    raise PapertopicsError(f"report file '{relative}' would be written outside the run folder")
                # A file the last report holds byte for byte is linked, not written again (never through a link).
                current = self.run_dir / relative
                try:
                    keep_or_write(current if current.resolve() == run_root / relative else None, target, data)
                except OutputError as exc:
                    cause = exc.__cause__
                    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
                    full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
                    hint = "free some space and run again; " if full else ""
                    raise OutputError(
                        f"{self.run_dir}: cannot write the new report ({reason} at {relative}); {hint}{kept}"
                    ) from cause
            for name in top_level:
                if (staging / name).is_dir():
                    _check_removable(self.run_dir / name)
            for name in top_level:
                self._swap_into_place(staging / name, self.run_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _swap_into_place(new: Path, final: Path) -> None:
        retired = final.with_name(f".{final.name}{RETIRED_INFIX}{uuid.uuid4().hex[:8]}")
        try:
            if new.is_dir():
                if os.path.lexists(final):  # a link (even a dangling one) is moved aside, not followed
                    os.replace(final, retired)
                os.replace(new, final)
            else:
                os.replace(new, final)
        except OSError as exc:
            raise output_error(final, exc) from exc
        if not os.path.lexists(retired):  # a file, or a folder with no previous one
            return
        try:
            if retired.is_symlink() or not retired.is_dir():
                retired.unlink()  # the link itself: what it points to is not the report's
            else:
                shutil.rmtree(retired)
        except OSError as exc:
            raise OutputError(
                f"{retired}: the new report is in place, but the previous one cannot be deleted "
                f"({exc.strerror or exc}); delete this folder"
            ) from exc

    def sweep_leftovers(self) -> list[Path]:
        """Delete what an interrupted run left half-done; returns the paths removed.

        Temporary files (never renamed into place), report staging folders and retired
        report folders are only ever written by a run holding the lock, so once this
        process holds it, any of them belongs to a run that died. Links are never followed:
        a stage folder that is a link to another folder is not swept (its files are not ours).
        """
        if not self.run_dir.is_dir():
            return []
        top = _entries(self.run_dir)
        folders = [self.run_dir, *(Path(entry.path) for entry in top if _plain_dir(entry) and entry.name[:1] != ".")]
        removed = []
        for folder in folders:
            for entry in top if folder == self.run_dir else _entries(folder):
                name, path = entry.name, Path(entry.path)
                stray_temp = (
                    name.startswith(".") and name.endswith(TEMP_SUFFIX) and entry.is_file(follow_symlinks=False)
                )
                stray_folder = (
                    folder == self.run_dir
                    and _plain_dir(entry)
                    and (name.startswith(STAGING_PREFIX) or (name.startswith(".") and RETIRED_INFIX in name))
                )
                try:
                    if stray_temp:
                        path.unlink(missing_ok=True)
                    elif stray_folder:
                        shutil.rmtree(path)  # removes links inside it, never what they point to
                except OSError as exc:
                    raise OutputError(
                        f"{path}: an interrupted run left this behind and it cannot be deleted "
                        f"({exc.strerror or exc}); delete it and run again"
                    ) from exc
                if stray_temp or stray_folder:
                    removed.append(path)
        return removed

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.run_dir / MANIFEST, json_to_bytes(dict(manifest)))

    def read_manifest(self) -> dict[str, Any] | None:
        """The run's manifest, or None when the run folder has none (no run finished there)."""
        try:
            manifest = json.loads((self.run_dir / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.run_dir / MANIFEST}: cannot read the run's manifest ({exc})") from None
        return manifest if isinstance(manifest, dict) else None

    def report_path(self, relative: str) -> Path:
        """Where a file the report published (``published.json`` lists them) lies: ``index.html``, ``topics/…``."""
        return self.run_dir / relative

    # -- evaluations of a finished run (``evaluate --stability``), at the top of the run folder ----
    def write_evaluation(self, name: str, value: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.run_dir / name, json_to_bytes(dict(value)))

    def read_evaluation(self, name: str) -> Any | None:
        """An evaluation written before, or None when there is none (or it is unreadable: it is redone then)."""
        try:
            return json.loads((self.run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # -- one writer at a time ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Refuse a second run on the same folder while the first is alive (``pipeline.run_lock``).

        Once the lock is held, what a dead run left half-done is swept.
        """
        with run_folder_lock(self.run_dir):
            self.sweep_leftovers()
            yield


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder``, each able to say what it is without following a link."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise output_error(folder, exc) from exc


def _plain_dir(entry: os.DirEntry[str]) -> bool:
    """A folder, not a link to one."""
    return entry.is_dir(follow_symlinks=False)


def _check_removable(folder: Path) -> None:
    """Raise OutputError unless every folder under ``folder`` lets its entries be deleted.

    Checked before a report folder (``topics/``) is swapped out: a read-only one was renamed
    aside, could not be deleted, and stayed behind as ``.topics.old-*`` with exit code 0.
    """
    if not folder.is_dir() or folder.is_symlink():
        return
    for current, _folders, _files in os.walk(folder):
        if not os.access(current, os.W_OK | os.X_OK):
            raise OutputError(
                f"{current}: the previous report's folder is read-only, so the new report cannot replace it; "
                "make it writable (chmod -R u+w) and run again; the previous report is left as it was"
            )
