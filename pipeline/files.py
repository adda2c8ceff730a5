"""Bytes on disk: atomic writes, content hashes and the formats of stored artifacts.

The artifact store (``pipeline.store``) and the memo (``pipeline.memo``) write every file
through :func:`atomic_write_bytes`: to a temporary name in the same folder, then renamed, so
a run killed at any moment never leaves a half-written file under its final name. Tables are
parquet, arrays ``.npy`` (whose header records shape and dtype, so hashing the bytes hashes
them too), small metadata JSON.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import OutputError

TEMP_SUFFIX = ".tmp"  # ".<name>.<8 hex>.tmp": a file being written; the next run sweeps strays


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


@dataclass(frozen=True)
class JoinedBytes:
    """A file's content as parts written one after the other (``atomic_write_bytes``), never joined in memory.

    The report's papers.csv is its topics' CSVs' rows end to end under one header: at a million
    papers, 1.7 GB that the topic files hold already. ``bytes(value)`` joins them (for a reader).
    """

    parts: tuple[bytes | memoryview, ...]

    def __len__(self) -> int:
        return sum(part.nbytes if isinstance(part, memoryview) else len(part) for part in self.parts)

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


def atomic_write_bytes(path: Path, data: bytes | JoinedBytes, *, sync: bool = True) -> None:
    """Write `data` (bytes, or parts one after the other) to `path` through a temporary file and a rename.

    With ``sync`` the bytes reach the disk before the rename (``fsync``), so that even a power cut
    leaves the old file or the new one. Without it a killed process still does (the kernel holds
    the bytes), but a power cut may leave the new name empty or short: for caches whose unreadable
    files are computed again (``pipeline.memo``), where one ``fsync`` per small file would cost
    more than the work it keeps.

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
            for part in data.parts if isinstance(data, JoinedBytes) else (data,):
                handle.write(part)
            handle.flush()
            if sync:
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


# Bytes compared at a time by ``holds_bytes``: a 126 MB papers.csv is read in pieces, not at once.
COMPARE_BLOCK = 1 << 24


def holds_bytes(path: Path, data: bytes | JoinedBytes) -> bool:
    """Whether ``path`` is a plain file (not a link) that holds exactly ``data``."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    with open(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_size != len(data):
            return False
        block = bytearray(COMPARE_BLOCK)
        for part in data.parts if isinstance(data, JoinedBytes) else (data,):
            view = memoryview(part).cast("B")
            for start in range(0, len(view), COMPARE_BLOCK):
                piece = view[start : start + COMPARE_BLOCK]
                # bytearray against a view compares with memcmp (two views: element by element, 40x slower)
                read = block if len(piece) == COMPARE_BLOCK else bytearray(len(piece))
                if handle.readinto(read) != len(piece) or read != piece:
                    return False
    return True


def keep_or_write(current: Path | None, path: Path, data: bytes | JoinedBytes) -> bool:
    """Put ``data`` at ``path``: a hard link of ``current`` when that holds the same bytes, else written.

    Returns whether ``current`` (None: nothing to compare with) was linked. The report's unchanged
    files (a label setting changed: the CSVs, the map) are then neither written again nor synced
    (hundreds of MB at 75k papers).
    """
    if current is not None and holds_bytes(current, data) and _linked(current, path):
        return True
    atomic_write_bytes(path, data)
    return False


def _linked(current: Path, path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(current, path, follow_symlinks=False)
    except OSError:  # a file system without hard links (or none left): the bytes are written instead
        return False
    return True


def table_to_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    return buffer.getvalue()


def array_to_bytes(array: np.ndarray) -> bytes:
    """``np.save``'s bytes of ``array`` (format 1.0), made with one copy of its data, not three.

    The .npy header records shape and dtype, so hashing these bytes hashes them too. Saved
    through a buffer, the million papers' vectors (1 GB) were held three times at once.
    """
    from numpy.lib import format as npy

    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise ValueError("array_to_bytes: an object array cannot be saved without pickle")
    header = io.BytesIO()
    npy.write_array_header_1_0(header, npy.header_data_from_array_1_0(array))
    return b"".join([header.getvalue(), array.reshape(-1).view(np.uint8).data])


def json_to_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


def one_chunk_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each Arrow-backed column in one chunk (a copy of that column, the old one let go).

    The parquet reader gives a column in chunks of 131,072 rows, and a take of rows from a chunked
    column costs time in proportion to the whole column (pyarrow joins the chunks for it): at
    200,000 papers 4,500 rows of the abstracts took 0.63 s chunked and 0.002 s from one chunk.
    The report takes each topic's rows of every column, the label stage its sample's. Only columns
    whose one chunk cannot outgrow 32-bit offsets are joined (large strings, fixed-width values).
    """
    import pyarrow as pa

    for column in frame.columns:
        values = frame[column].array
        if isinstance(values, pd.arrays.ArrowExtensionArray | pd.arrays.ArrowStringArray):
            chunked = values.__arrow_array__()
            kind = chunked.type
            if chunked.num_chunks > 1 and (pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
                                           or pa.types.is_primitive(kind)):  # fmt: skip
                frame[column] = pd.Series(
                    type(values)(pa.chunked_array([chunked.combine_chunks()])), index=frame.index, name=column
                )
    return frame
