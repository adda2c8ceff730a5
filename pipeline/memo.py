"""Sub-results stages keep between runs: one small memo API and the codecs of what it stores.

A stage keeps a sub-result between runs (the vectors of each text, each text's tokens, a
document-term matrix, a c-TF-IDF matrix) through :meth:`MemoStore.memo` (one value per key)
or :meth:`MemoStore.memo_rows` (one row per text, in append-only shards). Both live under
``<cache_dir>/<namespace>/``, shared by every run under one output folder, and store
``.npz`` files of plain arrays: a codec turns a value into named arrays and back, and lives
beside the type it stores (:class:`VectorRows` and :class:`SparseMatrix` here,
``pipeline.token_rows.TokenRows`` and ``pipeline.terms.TermCountsArrays``). The artifact store gives every
stage one (``store.cache``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from pipeline.files import atomic_write_bytes, sha256_bytes
from pipeline.parallel import computed_in_order

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


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, read with one system call and no copy beyond it.

    ``np.load`` copies a member 256 KB at a time, releasing the GIL on each read: with another
    thread busy (the label stage loads compiled code beside its reads) each read waited for the
    GIL, and reading 600 MB of memos took 9 s instead of 0.3 s. The archive's directory is read
    from the file, not from a ``BytesIO`` over the buffer (which copied every file once more: 1 GB
    at 75k papers on a relabel). The buffer is private (not a mapping of the file: a file
    truncated in place under a mapping kills the process, and the arrays stay writable). Members
    stored uncompressed (as :func:`_npz_bytes` writes them) become arrays over the one buffer, once
    their bytes match the CRC-32 the archive holds for them (a damaged file raises ValueError: its
    value is computed again, never trusted; 0.02 s per 100 MB); others go through ``np.load``,
    which checks it.
    """
    arrays: dict[str, np.ndarray] = {}
    with path.open("rb") as file:
        raw = bytearray(os.fstat(file.fileno()).st_size)
        if file.readinto(raw) != len(raw) or not raw:
            raise EOFError(f"{path}: shorter than its size, or empty")
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                # A stored member's data follows its local header: 30 bytes, its name and an extra field.
                name_length, extra_length = struct.unpack_from("<HH", raw, info.header_offset + 26)
                start = info.header_offset + 30 + name_length + extra_length
                if start + info.file_size > len(raw):
                    raise EOFError(f"{path}: {info.filename} runs past the end of the file")
                header = io.BytesIO(raw[start : start + min(info.file_size, 65_536)])
                stored = info.compress_type == zipfile.ZIP_STORED
                if not stored or (version := np.lib.format.read_magic(header)) not in _NPY_HEADERS:
                    with archive.open(info) as member:
                        arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                    continue
                if zlib.crc32(memoryview(raw)[start : start + info.file_size]) != info.CRC:
                    raise ValueError(f"{path}: {info.filename} does not match its checksum")
                shape, fortran_order, dtype = _NPY_HEADERS[version](header)
                if dtype.hasobject:
                    raise ValueError(f"{path}: {info.filename} holds Python objects")
                count = int(np.prod(shape, dtype=np.int64))
                array = np.frombuffer(raw, dtype=dtype, count=count, offset=start + header.tell())
                arrays[name] = array.reshape(shape, order="F" if fortran_order else "C")
    return arrays


_UNREADABLE = (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError, zipfile.BadZipFile, struct.error)


def _keep_latest(folder: Path, pattern: str, keep: int) -> int:
    """Delete all but the ``keep`` most recently used files matching ``pattern``; how many are left."""
    entries = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for stale in entries[keep:]:
        with contextlib.suppress(OSError):
            stale.unlink()
    return min(len(entries), keep)


def prune_slack(keep: int) -> int:
    """Values a namespace may hold beyond ``keep`` before :meth:`MemoStore.put` prunes it: a tenth.

    Pruning lists and stats the whole folder: doing it on every put made storing n values cost n²
    (500,500 stats for 1,000 input files). With the slack it runs once per ``keep // 10`` new values
    at most, so each put costs a constant on average; a small ``keep`` (2) is kept exactly.
    """
    return keep // 10


def _write_shard(folder: Path, chunks: list[tuple[np.ndarray, T]], codec: RowCodec[T]) -> tuple[np.ndarray, T]:
    """Write the (keys, rows) ``chunks`` as one shard; returns it as a (keys, rows) part."""
    shard_keys = np.concatenate([chunk_keys for chunk_keys, _ in chunks])
    rows = chunks[0][1] if len(chunks) == 1 else codec.take(chunks, stored_keys(shard_keys))
    data = _npz_bytes({"keys": shard_keys, **codec.encode(rows)})
    atomic_write_bytes(folder / f"shard-{sha256_bytes(data)[:16]}.npz", data)
    return shard_keys, rows


class MemoStore:
    """Sub-results kept between runs, under ``<cache_dir>/<namespace>/``."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = Path(cache_dir)
        # Values per namespace folder: listed at the first put there, then counted by each put of a new key.
        self._held: dict[Path, int] = {}

    def folder(self, namespace: str) -> Path:
        return self.cache_dir / namespace

    def memo(self, namespace: str, key: str, compute: Callable[[], T], codec: Codec[T], keep: int = 2) -> T:
        """The value stored under ``key``, else ``compute()``, stored for the next run.

        Only the ``keep`` most recently used values of a namespace are kept (they can be
        large: a document-term matrix at 75k papers is 100-200 MB), up to :func:`prune_slack`
        more between prunings. A file that cannot be read is computed again.
        """
        found = self.get(namespace, key, codec)
        if found is not None:
            return found
        value = compute()
        self.put(namespace, key, value, codec, keep)
        return value

    def get(self, namespace: str, key: str, codec: Codec[T]) -> T | None:
        """The value stored under ``key`` (now the most recently used), or None: not stored, or unreadable.

        For a caller that computes the missing values elsewhere (on Dask workers, or from the last
        run's state) and stores them with :meth:`put`; :meth:`memo` is both in one call.
        """
        path = self.folder(namespace) / f"{key}.npz"
        try:
            value = codec.decode(_read_npz(path))
        except _UNREADABLE:
            return None  # not stored yet, or a file this code cannot read
        os.utime(path)  # most recently used
        return value

    def put(self, namespace: str, key: str, value: T, codec: Codec[T], keep: int = 2) -> None:
        """Store ``value`` under ``key``, keeping the ``keep`` most recently used values of the namespace.

        The value is a cache entry: written atomically but without ``fsync`` (``atomic_write_bytes``),
        as a file a power cut left short cannot be read and is computed again.
        """
        folder = self.folder(namespace)
        path = folder / f"{key}.npz"
        new = not path.exists()
        atomic_write_bytes(path, _npz_bytes(codec.encode(value)), sync=False)
        held = self._held.get(folder)
        if held is None:
            held = sum(1 for _ in folder.glob("*.npz"))
        elif new:
            held += 1
        if held > keep + prune_slack(keep):
            held = _keep_latest(folder, "*.npz", keep)
        self._held[folder] = held

    def memo_rows(
        self,
        namespace: str,
        keys: Sequence[bytes],
        compute: Callable[[list[int]], T],
        codec: RowCodec[T],
        keep_assembled: int = 0,
        shard_rows: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        chunk_rows: int | None = None,
        save_every_s: float | None = None,
        ahead: int = 0,
    ) -> tuple[T, int]:
        """One row per key, in the order of ``keys``, computing only the rows no run stored yet.

        Rows live in append-only shards (``shard-<hash>.npz``: the keys and the codec's
        arrays); a shard is never modified, so an interrupted write can only lose the shard
        being written. ``compute(indices)`` returns the rows of ``keys[i]`` for those indices.
        With ``shard_rows``, missing rows are computed and written ``shard_rows`` at a time, so
        a run killed halfway keeps what it finished and the next one computes only the rest.
        With ``chunk_rows`` as well, ``compute`` is called on that many rows at a time, and a
        shard is also written once ``save_every_s`` seconds passed since the last one, so a
        killed run loses at most about that much work however slow each row is. With ``ahead``, that
        many calls of ``compute`` after the first run beside the one being stored
        (``parallel.computed_in_order``): ``compute`` must then be safe to call from several threads.
        ``progress(done, total)`` hears of each call of ``compute``. With ``keep_assembled``, a result
        assembled from several shards is also kept whole (the ``keep_assembled`` most recent),
        with its keys, so the next run with the same keys reads one file, and a run with other
        keys (a feed's next day: the last run's texts and a few more) starts from the most
        recently used whole, reading the shards only when that lacks rows. Returns the rows
        and how many were computed.
        """
        folder = self.folder(namespace)
        digest = sha256_bytes(b"".join(keys))
        whole = folder / f"assembled-{digest}.npz"
        base: tuple[np.ndarray, T] | None = None
        if keep_assembled:
            try:
                value = codec.decode(_read_npz(whole))
                os.utime(whole)
                return value, 0
            except _UNREADABLE:
                base = self._latest_assembled(folder, codec)
        parts: list[tuple[np.ndarray, T]] = []
        known: set[bytes] = set()
        if base is not None:
            # A feed's next run wants the last run's texts and a few more: the last assembled
            # result holds most rows, in one part, and a shard joins only if it holds others.
            parts.append(base)
            known.update(stored_keys(base[0]))
        if not known.issuperset(keys):
            for shard in sorted(folder.glob("shard-*.npz")):
                try:
                    arrays = _read_npz(shard)
                    part = (arrays.pop("keys"), codec.decode(arrays))
                except _UNREADABLE:
                    continue  # a shard that cannot be read is ignored: its rows are computed again
                held = stored_keys(part[0])
                if base is None or not known.issuperset(held):
                    parts.append(part)
                    known.update(held)
        first_index: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in known:
                first_index.setdefault(key, index)
        missing, indices = list(first_index), list(first_index.values())
        step = shard_rows or max(1, len(missing))
        chunk = min(step, chunk_rows or step)
        pending: list[tuple[np.ndarray, T]] = []  # computed, not yet written
        last_saved = time.monotonic()
        bounds = [(start, min(start + chunk, len(missing))) for start in range(0, len(missing), chunk)]
        with contextlib.closing(
            computed_in_order(lambda part: compute(indices[part[0] : part[1]]), bounds, ahead)
        ) as results:
            for (start, stop), rows in zip(bounds, results, strict=True):
                pending.append((np.array(missing[start:stop], dtype=f"S{TEXT_KEY_BYTES}"), rows))
                pending_rows = sum(len(chunk_keys) for chunk_keys, _ in pending)
                due = save_every_s is not None and time.monotonic() - last_saved >= save_every_s
                if pending_rows >= step or stop == len(missing) or due:
                    parts.append(_write_shard(folder, pending, codec))
                    pending, last_saved = [], time.monotonic()
                if progress is not None:
                    progress(stop, len(missing))
        value = codec.take(parts, keys)
        if keep_assembled and all(value is not part for _, part in parts):
            stored = np.array(list(keys), dtype=f"S{TEXT_KEY_BYTES}")
            atomic_write_bytes(whole, _npz_bytes({"keys": stored, **codec.encode(value)}))
            _keep_latest(folder, "assembled-*.npz", keep_assembled)
        return value, len(first_index)

    @staticmethod
    def _latest_assembled(folder: Path, codec: RowCodec[T]) -> tuple[np.ndarray, T] | None:
        """The most recently used assembled result that says which keys it holds, as a (keys, rows) part."""
        for path in sorted(folder.glob("assembled-*.npz"), key=lambda path: path.stat().st_mtime_ns, reverse=True):
            try:
                arrays = _read_npz(path)
                if "keys" in arrays:
                    return arrays.pop("keys"), codec.decode(arrays)
            except _UNREADABLE:
                continue
        return None


class VectorRows:
    """Rows of a float32 matrix (one vector per key): the codec of the embedding memo."""

    def encode(self, value: np.ndarray) -> dict[str, np.ndarray]:
        return {"vectors": np.asarray(value, dtype=np.float32)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        return arrays["vectors"]

    def take(self, parts: Sequence[tuple[np.ndarray, np.ndarray]], keys: Sequence[bytes]) -> np.ndarray:
        dim = parts[0][1].shape[1] if parts else 0
        if not keys:
            return np.zeros((0, dim), dtype=np.float32)
        part_of, row_in = key_rows([part_keys for part_keys, _ in parts], keys)
        # Gathered part by part into one matrix (one key at a time cost 1 s at 75,000 papers, and
        # stacking the parts first would hold every stored vector twice).
        vectors = np.empty((len(keys), dim), dtype=np.float32)
        for number, (_, part) in enumerate(parts):
            mine = np.flatnonzero(part_of == number)
            if len(mine):
                vectors[mine] = part[row_in[mine]]
        return vectors


def key_rows(parts_keys: Sequence[np.ndarray], keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``keys`` is stored: its part's number and its row there (the first part holding it wins).

    Raises KeyError when a key is in no part.
    """
    if not parts_keys:
        raise KeyError(f"{len(keys)} wanted row(s) and no stored part")
    stored = np.concatenate([np.asarray(part_keys, dtype=f"S{TEXT_KEY_BYTES}") for part_keys in parts_keys])
    part_of = np.repeat(np.arange(len(parts_keys)), [len(part_keys) for part_keys in parts_keys])
    row_in = np.concatenate([np.arange(len(part_keys)) for part_keys in parts_keys])
    # pandas holds the keys as bytes without their trailing NUL bytes, the same on both sides:
    # two different 16-byte keys never lose them into the same value.
    index = pd.Index(stored)
    first = np.flatnonzero(~index.duplicated(keep="first"))
    found = index[first].get_indexer(pd.Index(np.asarray(keys, dtype=f"S{TEXT_KEY_BYTES}")))
    if (found < 0).any():
        raise KeyError(f"{int((found < 0).sum())} wanted row(s) are in no stored part")
    return part_of[first[found]], row_in[first[found]]


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
