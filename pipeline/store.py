"""The artifact store: the only code that decides where results live and how they are written.

Layout of one run (``outputs/<run>/``)::

    01_parse/ … 05_report/   one folder per stage, numbered in pipeline order; each holds the
                             artifacts its stage declares (``pipeline/stages/``: parquet tables,
                             .npy arrays, JSON) and ``_stage.json``, the stage's record
    index.html, map.html, topics.html, topics/, assets/, papers.csv, topics.csv, metrics.json
                             the report, published by ``publish_report``
    manifest.json            the run's manifest (``write_manifest``)
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
import fcntl
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from pipeline.errors import OutputError, PapertopicsError, RunLockedError

# Bump when the layout or the meaning of a stored artifact changes: older folders are recomputed.
STORE_FORMAT_VERSION = 1
STAGE_MARKER = "_stage.json"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".report-staging-"
RETIRED_INFIX = ".old-"  # ".topics.old-1a2b3c4d": the previous report's folder, being replaced
TEMP_SUFFIX = ".tmp"


def output_error(path: Path, exc: OSError) -> OutputError:
    """A one-line OutputError for a failed write of ``path``."""
    reason = exc.strerror or str(exc)
    hint = "; free some space and run again" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return OutputError(f"{path}: cannot write the output ({reason}){hint}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_json(value: Any) -> str:
    """Stable hash of a JSON-able value (keys sorted, no whitespace)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode())


def stage_cache_key(stage: str, code_version: int, config_slice: Mapping[str, Any], input_hashes: list[str]) -> str:
    """Content key of a stage: its name, code version, config slice and the hashes of its inputs."""
    return hash_json(
        {
            "stage": stage,
            "code_version": code_version,
            "store_format": STORE_FORMAT_VERSION,
            "config": dict(config_slice),
            "inputs": list(input_hashes),
        }
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    Raises OutputError when the folder cannot be made or the file cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A new file or nothing: a link (or anything else) already under the temporary name is
        # never followed, so no write can land outside the folder through a planted link.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        created = True
        with open(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError) and not created:
            raise OutputError(
                f"{temporary}: something already has this temporary name; remove it and run again"
            ) from exc
        if isinstance(exc, OSError):
            raise output_error(path, exc) from exc
        raise


def table_to_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    return buffer.getvalue()


def array_to_bytes(array: np.ndarray) -> bytes:
    # The .npy header records shape and dtype, so hashing these bytes hashes them too.
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def json_to_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


@dataclass(frozen=True)
class StageRecord:
    """What ``_stage.json`` says about a finished stage."""

    stage: str
    key: str
    output_hashes: dict[str, str]
    seconds: float
    counts: dict[str, Any]


class ArtifactStore:
    """Paths, formats, atomic writes and stage markers for one run folder."""

    def __init__(self, run_dir: Path, cache_dir: Path):
        self.run_dir = Path(run_dir)
        self.cache_dir = Path(cache_dir)
        # Sub-results stages keep between runs (``memo`` / ``memo_rows``), shared by all runs here.
        self.cache = MemoStore(self.cache_dir)
        # Tables read during this run, by path, with the file's size and modification time: the
        # label and report stages both read the papers (0.3 s each at 75k papers).
        self._tables: dict[Path, tuple[tuple[int, int, int], pd.DataFrame]] = {}

    # -- stage folders ---------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        from pipeline.stages import STAGE_NAMES  # the stages import the store: resolved on first use

        return self.run_dir / f"{STAGE_NAMES.index(stage) + 1:02d}_{stage}"

    def finished(self, stage: str) -> StageRecord | None:
        """The stage's record if it finished completely under this store format, else None."""
        marker = self.stage_dir(stage) / STAGE_MARKER
        try:
            raw = json.loads(marker.read_text(encoding="utf-8"))
            if raw.get("format_version") != STORE_FORMAT_VERSION:
                return None
            record = StageRecord(raw["stage"], raw["key"], raw["output_hashes"], raw["seconds"], raw.get("counts", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing, unreadable, or not a marker this store wrote: recompute
        # An output deleted by hand (or never renamed into place) makes the stage untrusted.
        if not all((self.stage_dir(stage) / name).is_file() for name in record.output_hashes):
            return None
        return record

    def invalidate(self, stage: str) -> None:
        """Forget that a stage finished, before it is recomputed."""
        marker = self.stage_dir(stage) / STAGE_MARKER
        try:
            marker.unlink(missing_ok=True)
        except OSError as exc:
            raise output_error(marker, exc) from exc

    def save_stage(
        self, stage: str, key: str, outputs: Mapping[str, bytes], seconds: float, counts: Mapping[str, Any]
    ) -> StageRecord:
        """Write a stage's outputs, then its marker, each atomically; the marker goes last."""
        folder = self.stage_dir(stage)
        for name, data in outputs.items():
            atomic_write_bytes(folder / name, data)
        record = StageRecord(
            stage, key, {name: sha256_bytes(data) for name, data in outputs.items()}, seconds, dict(counts)
        )
        marker = {"format_version": STORE_FORMAT_VERSION, **record.__dict__}
        atomic_write_bytes(folder / STAGE_MARKER, json_to_bytes(marker))
        return record

    # -- reading artifacts -------------------------------------------------------------
    def read_table(self, stage: str, name: str) -> pd.DataFrame:
        path = self.stage_dir(stage) / name
        info = path.stat()
        version = (info.st_ino, info.st_size, info.st_mtime_ns)  # a rewrite is a new file (atomic rename)
        kept = self._tables.get(path)
        if kept is None or kept[0] != version:
            kept = (version, pd.read_parquet(path, engine="pyarrow"))
            self._tables[path] = kept
        # A new frame over the same columns: under copy-on-write a caller's change copies first.
        return kept[1].copy(deep=False)

    def read_array(self, stage: str, name: str) -> np.ndarray:
        return np.load(self.stage_dir(stage) / name, allow_pickle=False)

    def read_json(self, stage: str, name: str) -> Any:
        return json.loads((self.stage_dir(stage) / name).read_text(encoding="utf-8"))

    # -- the report's files ------------------------------------------------------------
    def publish_report(self, files: Mapping[str, bytes]) -> None:
        """Put the report's files at the top of the run folder, replacing the previous report.

        The new files are first written in full to a staging folder beside the old report,
        so a failure while writing (disk full, killed run) leaves the previous report intact.
        """
        staging = self.run_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
        top_level = sorted({Path(relative).parts[0] for relative in files})
        previous = any((self.run_dir / name).exists() for name in top_level)
        kept = "the previous report is left as it was" if previous else "no report was published"
        try:
            for relative, data in files.items():
                target = (staging / relative).resolve()
                if staging.resolve() not in target.parents:
                    raise PapertopicsError(f"report file '{relative}' would be written outside the run folder")
                try:
                    atomic_write_bytes(target, data)
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
                if final.exists():
                    os.replace(final, retired)
                os.replace(new, final)
            else:
                os.replace(new, final)
        except OSError as exc:
            raise output_error(final, exc) from exc
        if not retired.exists():  # a file, or a folder with no previous one
            return
        try:
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
        process holds it, any of them belongs to a run that died.
        """
        if not self.run_dir.is_dir():
            return []
        folders = [self.run_dir, *(path for path in self.run_dir.iterdir() if path.is_dir() and path.name[:1] != ".")]
        removed = []
        for folder in folders:
            for path in folder.iterdir():
                name = path.name
                stray_temp = name.startswith(".") and name.endswith(TEMP_SUFFIX) and path.is_file()
                stray_folder = (
                    folder == self.run_dir
                    and path.is_dir()
                    and (name.startswith(STAGING_PREFIX) or (name.startswith(".") and RETIRED_INFIX in name))
                )
                if stray_temp:
                    path.unlink(missing_ok=True)
                    removed.append(path)
                elif stray_folder:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        return removed

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.run_dir / "manifest.json", json_to_bytes(dict(manifest)))

    # -- one writer at a time ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Refuse a second run on the same folder while the first is alive.

        An exclusive ``flock`` on ``.lock`` (pid written inside, for the message): the kernel
        drops it when its process dies, however it dies. Raises RunLockedError when another
        process holds it, OutputError when the run folder cannot be created.
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(self.run_dir, exc) from exc
        lock_path = self.run_dir / LOCK_FILE
        descriptor = _take_lock(lock_path, self.run_dir)
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, str(os.getpid()).encode())
            self.sweep_leftovers()
            yield
        finally:
            # Unlink while still holding the lock, so no one locks a file that is gone.
            with contextlib.suppress(OSError):
                lock_path.unlink()
            os.close(descriptor)


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


def _take_lock(lock_path: Path, run_dir: Path) -> int:
    """An open descriptor of ``lock_path`` holding its exclusive flock."""
    while True:
        try:
            # Never through a link: "ftruncate + write pid" would clobber the file it points to.
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(
                    f"{lock_path}: is a symbolic link; the run lock must be a plain file "
                    "(delete the link and run again)"
                ) from None
            raise output_error(lock_path, exc) from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(lock_path)
            os.close(descriptor)
            raise RunLockedError(
                f"{run_dir}: another papertopics run (pid {holder or 'unknown'}) is writing here; "
                "wait for it to finish or use another output folder"
            ) from None
        # The holder we waited on may have unlinked the file before we locked it: then the
        # lock is on a file no one else will open, so start again with the current one.
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            os.close(descriptor)
            continue
        opened = os.fstat(descriptor)
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return descriptor
        os.close(descriptor)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# -- results kept between runs: the generic memo ------------------------------------------
#
# A stage keeps a sub-result between runs (the vectors of each text, each text's tokens, a
# document-term matrix, a c-TF-IDF matrix) through ``memo`` (one value per key) or
# ``memo_rows`` (one row per text, in append-only shards). Both live under
# ``<cache_dir>/<namespace>/``, shared by every run under one output folder, and store
# ``.npz`` files of plain arrays: a codec turns a value into named arrays and back.

TEXT_KEY_BYTES = 16
T = TypeVar("T")


class Codec(Protocol[T]):
    """Turns a value into named arrays for an ``.npz`` file, and back."""

    def encode(self, value: T) -> dict[str, np.ndarray]: ...
    def decode(self, arrays: Mapping[str, np.ndarray]) -> T: ...


class RowCodec(Codec[T], Protocol[T]):
    """A codec for values that hold one row per key (vectors, tokenised texts)."""

    def take(self, parts: Sequence[tuple[np.ndarray, T]], keys: Sequence[bytes]) -> T:
        """The rows of ``keys`` in that order, from (keys, value) parts (the first holding a key wins).

        Returns a part itself when it holds exactly ``keys`` in that order.
        """
        ...


def text_key(text: str) -> bytes:
    """The 16-byte content key of a text in every per-text memo."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:TEXT_KEY_BYTES]


def stored_keys(array: np.ndarray) -> list[bytes]:
    """The text keys of a shard's ``S16`` array, each its full 16 bytes.

    numpy drops trailing NUL bytes when it turns an ``S16`` value into ``bytes``: about one
    key in 256 ends in one, and would never match its text again (recomputed every run).
    """
    return [key.ljust(TEXT_KEY_BYTES, b"\0") for key in array.tolist()]


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **dict(arrays))  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return buffer.getvalue()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as content:
        return {name: content[name] for name in content.files}


_UNREADABLE = (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError)


def _keep_latest(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the ``keep`` most recently used files matching ``pattern``."""
    entries = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for stale in entries[keep:]:
        with contextlib.suppress(OSError):
            stale.unlink()


class MemoStore:
    """Sub-results kept between runs, under ``<cache_dir>/<namespace>/``."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = Path(cache_dir)

    def folder(self, namespace: str) -> Path:
        return self.cache_dir / namespace

    def memo(self, namespace: str, key: str, compute: Callable[[], T], codec: Codec[T], keep: int = 2) -> T:
        """The value stored under ``key``, else ``compute()``, stored for the next run.

        Only the ``keep`` most recently used values of a namespace are kept (they can be
        large: a document-term matrix at 75k papers is 100-200 MB). A file that cannot be
        read is computed again.
        """
        path = self.folder(namespace) / f"{key}.npz"
        try:
            value = codec.decode(_read_npz(path))
            os.utime(path)  # most recently used
            return value
        except _UNREADABLE:
            pass  # not stored yet, or a file this code cannot read: compute it again
        value = compute()
        atomic_write_bytes(path, _npz_bytes(codec.encode(value)))
        _keep_latest(path.parent, "*.npz", keep)
        return value

    def memo_rows(
        self,
        namespace: str,
        keys: Sequence[bytes],
        compute: Callable[[list[int]], T],
        codec: RowCodec[T],
        keep_assembled: int = 0,
        shard_rows: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[T, int]:
        """One row per key, in the order of ``keys``, computing only the rows no run stored yet.

        Rows live in append-only shards (``shard-<hash>.npz``: the keys and the codec's
        arrays); a shard is never modified, so an interrupted write can only lose the shard
        being written. ``compute(indices)`` returns the rows of ``keys[i]`` for those indices.
        With ``shard_rows``, missing rows are computed and written ``shard_rows`` at a time, so
        a run killed halfway keeps what it finished and the next one computes only the rest;
        ``progress(done, total)`` hears of each shard. With ``keep_assembled``, a result
        assembled from several shards is also kept whole (the ``keep_assembled`` most recent),
        so the next run with the same keys reads one file. Returns the rows and how many were
        computed.
        """
        folder = self.folder(namespace)
        digest = sha256_bytes(b"".join(keys))
        whole = folder / f"assembled-{digest}.npz"
        if keep_assembled:
            try:
                value = codec.decode(_read_npz(whole))
                os.utime(whole)
                return value, 0
            except _UNREADABLE:
                pass
        parts: list[tuple[np.ndarray, T]] = []
        known: set[bytes] = set()
        for shard in sorted(folder.glob("shard-*.npz")):
            try:
                arrays = _read_npz(shard)
                part = (arrays.pop("keys"), codec.decode(arrays))
            except _UNREADABLE:
                continue  # a shard that cannot be read is ignored: its rows are computed again
            parts.append(part)
            known.update(stored_keys(part[0]))
        first_index: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in known:
                first_index.setdefault(key, index)
        missing, indices = list(first_index), list(first_index.values())
        step = shard_rows or max(1, len(missing))
        for start in range(0, len(missing), step):
            rows = compute(indices[start : start + step])
            shard_keys = np.array(missing[start : start + step], dtype=f"S{TEXT_KEY_BYTES}")
            data = _npz_bytes({"keys": shard_keys, **codec.encode(rows)})
            atomic_write_bytes(folder / f"shard-{sha256_bytes(data)[:16]}.npz", data)
            parts.append((shard_keys, rows))
            if progress is not None:
                progress(min(start + step, len(missing)), len(missing))
        value = codec.take(parts, keys)
        if keep_assembled and all(value is not part for _, part in parts):
            atomic_write_bytes(whole, _npz_bytes(codec.encode(value)))
            _keep_latest(folder, "assembled-*.npz", keep_assembled)
        return value, len(first_index)


class VectorRows:
    """Rows of a float32 matrix (one vector per key): the codec of the embedding memo."""

    def encode(self, value: np.ndarray) -> dict[str, np.ndarray]:
        return {"vectors": np.asarray(value, dtype=np.float32)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        return arrays["vectors"]

    def take(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], keys: Sequence[bytes]) -> np.ndarray:
        where: dict[bytes, tuple[int, int]] = {}
        wanted = set(keys)
        for number, (part_keys, _) in enumerate(parts):
            for row, key in enumerate(stored_keys(part_keys)):
                if key in wanted and key not in where:
                    where[key] = (number, row)
        if not keys:
            dim = parts[0][1].shape[1] if parts else 0
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([parts[where[key][0]][1][where[key][1]] for key in keys]).astype(np.float32)


class SparseMatrix:
    """A scipy CSR matrix as arrays: the codec of the c-TF-IDF memo."""

    def encode(self, value: Any) -> dict[str, np.ndarray]:
        return csr_fields(value)

    def decode(self, arrays: Mapping[str, np.ndarray]) -> Any:
        return csr_from(arrays)


def csr_fields(matrix: Any) -> dict[str, np.ndarray]:
    """A CSR matrix's arrays, for an ``.npz`` file."""
    return {
        "shape": np.array(matrix.shape, dtype=np.int64),
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
    }


def csr_from(arrays: Mapping[str, np.ndarray]) -> Any:
    """The CSR matrix of :func:`csr_fields`' arrays."""
    from scipy import sparse

    shape = tuple(arrays["shape"].tolist())
    return sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)


def words_to_array(words: np.ndarray) -> np.ndarray:
    """Words as UTF-8 bytes joined by newlines (words never hold white space): 10x smaller than U-strings."""
    return np.frombuffer("\n".join(words.tolist()).encode("utf-8"), dtype=np.uint8)


def words_from_array(array: np.ndarray) -> np.ndarray:
    """The words of :func:`words_to_array`, as an object array of str."""
    text = array.tobytes().decode("utf-8")
    return np.array(text.split("\n") if text else [], dtype=object)
