"""The artifact store: the only code that decides where results live and how they are written.

Layout of one run (``outputs/<run>/``)::

    01_parse/papers.parquet, file_reports.json, _stage.json
    02_embed/embeddings.npy, _stage.json
    03_cluster/labels.npy, reduced.npy, layout.npy, cluster.json, _stage.json
    04_label/assignments.parquet, topics.parquet, label.json, _stage.json
    05_report/_stage.json          (the report's files sit at the top of the run folder)
    index.html, map.html, ..., manifest.json

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

The embedding cache (``outputs/.cache/embeddings/<model key>/``) is shared by all runs
under one output folder and keyed by the hash of each text, so adding papers or changing
clustering settings never embeds a text twice.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import STAGE_NAMES
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
        # Tables read during this run, by path, with the file's size and modification time: the
        # label and report stages both read the papers (0.3 s each at 75k papers).
        self._tables: dict[Path, tuple[tuple[int, int, int], pd.DataFrame]] = {}

    # -- stage folders ---------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
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


TEXT_KEY_BYTES = 16


def stored_keys(array: np.ndarray) -> list[bytes]:
    """The text keys of a cache shard's ``S16`` array, each its full 16 bytes.

    numpy drops trailing NUL bytes when it turns an ``S16`` value into ``bytes``: about one
    key in 256 ends in one, and would never match its text again (re-embedded every run).
    """
    return [key.ljust(TEXT_KEY_BYTES, b"\0") for key in array.tolist()]


class EmbeddingCache:
    """Vectors keyed by (model key, text hash), stored as append-only shards of .npz files.

    A shard is never modified after it is written; new texts go into a new shard, so an
    interrupted write can only lose the shard being written, never corrupt older ones.
    """

    def __init__(self, root: Path, model_key: str):
        self.folder = Path(root) / "embeddings" / model_key

    @staticmethod
    def text_key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()[:TEXT_KEY_BYTES]

    def lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """Cached vectors for the keys that have one."""
        wanted = set(keys)
        found: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.folder.glob("shard-*.npz")):
            with np.load(shard, allow_pickle=False) as content:
                shard_keys, vectors = content["keys"], content["vectors"]
            for row, key in enumerate(stored_keys(shard_keys)):
                if key in wanted and key not in found:
                    found[key] = vectors[row]
        return found

    def add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if not keys:
            return
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys, dtype="S16"), vectors=np.asarray(vectors, dtype=np.float32))
        data = buffer.getvalue()
        atomic_write_bytes(self.folder / f"shard-{sha256_bytes(data)[:16]}.npz", data)


def _words_to_array(words: np.ndarray) -> np.ndarray:
    """Words as UTF-8 bytes joined by newlines (tokens never hold white space): 10x smaller than U-strings."""
    return np.frombuffer("\n".join(words.tolist()).encode("utf-8"), dtype=np.uint8)


def _words_from_array(array: np.ndarray) -> np.ndarray:
    text = array.tobytes().decode("utf-8")
    return np.array(text.split("\n") if text else [], dtype=object)


class TokenCache:
    """Tokenised texts keyed by (tokenizer version, text hash), as append-only .npz shards.

    A shard holds its keys, its own vocabulary (words joined by newlines: tokens never hold
    white space) and the token ids of each text; ``pipeline.terms.select_texts`` assembles
    the texts a run needs from all shards. Like the embedding cache, shards are never
    modified, so an interrupted write can only lose the shard being written.
    """

    def __init__(self, root: Path, tokenizer_version: int):
        self.folder = Path(root) / "tokens" / f"v{tokenizer_version}"

    def shards(self) -> list[tuple[np.ndarray, Any]]:
        """(keys, TokenizedTexts) of every readable shard, oldest name first."""
        from pipeline.terms import TokenizedTexts

        parts = []
        for shard in sorted(self.folder.glob("shard-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as content:
                    vocabulary = _words_from_array(content["vocabulary"])
                    texts = TokenizedTexts(vocabulary, content["tokens"], content["offsets"])
                    parts.append((content["keys"], texts))
            except (OSError, ValueError, KeyError, UnicodeDecodeError):
                continue  # a shard that cannot be read is ignored: its texts are tokenised again
        return parts

    def add(self, keys: list[bytes], texts: Any) -> None:
        if not keys:
            return
        buffer = io.BytesIO()
        np.savez(
            buffer,
            keys=np.array(keys, dtype="S16"),
            vocabulary=_words_to_array(texts.vocabulary),
            tokens=texts.tokens.astype(np.int32),
            offsets=texts.offsets.astype(np.int64),
        )
        data = buffer.getvalue()
        atomic_write_bytes(self.folder / f"shard-{sha256_bytes(data)[:16]}.npz", data)

    # A run's texts assembled from several shards (after papers were added), kept whole so that
    # the next label change reads one file instead of assembling them again (1.8 s at 75k papers).
    # Only the ``SELECTIONS_KEPT`` most recently used are kept: each is as large as the texts' shards.
    SELECTIONS_KEPT = 2

    def selection(self, digest: str) -> Any | None:
        """The texts whose keys hash to ``digest`` (``runner._cached_tokens``), if kept, else None."""
        from pipeline.terms import TokenizedTexts

        path = self.folder / f"selection-{digest}.npz"
        try:
            with np.load(path, allow_pickle=False) as content:
                texts = TokenizedTexts(_words_from_array(content["vocabulary"]), content["tokens"], content["offsets"])
            os.utime(path)  # most recently used
        except (OSError, ValueError, KeyError, UnicodeDecodeError):
            return None
        return texts

    def keep_selection(self, digest: str, texts: Any) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            vocabulary=_words_to_array(texts.vocabulary),
            tokens=texts.tokens.astype(np.int32),
            offsets=texts.offsets.astype(np.int64),
        )
        atomic_write_bytes(self.folder / f"selection-{digest}.npz", buffer.getvalue())
        kept = sorted(self.folder.glob("selection-*.npz"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
        for stale in kept[self.SELECTIONS_KEPT :]:
            stale.unlink(missing_ok=True)


class TermCountsCache:
    """The latest document-term matrices, keyed by texts, stop words and n-gram length.

    A changed label setting other than those reuses the matrix (8 s at 75k papers). Entries
    are 100-200 MB at 75k papers, so only the ``keep`` most recently used are kept.
    """

    def __init__(self, root: Path, keep: int = 2):
        self.folder = Path(root) / "term-counts"
        self.keep = keep

    def get(self, key: str) -> Any | None:
        from pipeline.terms import TermCounts

        path = self.folder / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as content:
                matrix = _csr_from(content)
                vocabulary = _words_from_array(content["vocabulary"])
                ngrams = tuple(content[f"ngrams_{n}"] for n in range(1, int(content["ngram_max"]) + 1))
            os.utime(path)  # most recently used
        except (OSError, ValueError, KeyError, UnicodeDecodeError):
            return None
        return TermCounts(matrix, vocabulary, ngrams)

    def put(self, key: str, counts: Any) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            **_csr_fields(counts.matrix),
            vocabulary=_words_to_array(counts.vocabulary),
            ngram_max=np.array(len(counts.ngrams)),
            **{f"ngrams_{n}": block for n, block in enumerate(counts.ngrams, start=1)},
        )
        atomic_write_bytes(self.folder / f"{key}.npz", buffer.getvalue())
        _keep_latest(self.folder, self.keep)


class ClassWeightsCache:
    """The latest c-TF-IDF matrices (topics x terms), keyed by the term counts and the topic of every paper.

    A label setting that leaves every paper in its topic (keywords per topic, names, the
    coarse level) reuses the matrix instead of summing 75k papers' counts again (0.8 s).
    Entries are about 80 MB at 75k papers; the ``keep`` most recently used are kept.
    """

    def __init__(self, root: Path, keep: int = 2):
        self.folder = Path(root) / "class-weights"
        self.keep = keep

    def get(self, key: str) -> Any | None:
        path = self.folder / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as content:
                matrix = _csr_from(content)
            os.utime(path)  # most recently used
        except (OSError, ValueError, KeyError):
            return None
        return matrix

    def put(self, key: str, matrix: Any) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **_csr_fields(matrix))
        atomic_write_bytes(self.folder / f"{key}.npz", buffer.getvalue())
        _keep_latest(self.folder, self.keep)


def _csr_fields(matrix: Any) -> dict[str, np.ndarray]:
    return {
        "shape": np.array(matrix.shape, dtype=np.int64),
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
    }


def _csr_from(content: Any) -> Any:
    from scipy import sparse

    shape = tuple(content["shape"].tolist())
    return sparse.csr_matrix((content["data"], content["indices"], content["indptr"]), shape=shape)


def _keep_latest(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used .npz entries of a cache folder."""
    entries = sorted(folder.glob("*.npz"), key=lambda path: path.stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        with contextlib.suppress(OSError):
            stale.unlink()
