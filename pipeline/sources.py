"""Find and read the input files named by the config: the only filesystem code of the parse stage.

Each ``InputSpec.path`` is a file, a folder or a glob (``**`` allowed). Matches are read in
sorted order so a run is deterministic; ``*.gz`` files are gunzipped; the sha256 is taken
of the raw bytes as stored, so it changes exactly when the file changes. Hidden files
and folders (names starting with ".") are not inputs: they are editor and OS droppings.

With ``keep_bytes=False`` (``engine.kind: dask``) each file is read here only to take its
hash, size and whether it is blank, and its bytes are dropped: the Dask worker that parses
it opens it by path (:meth:`SourceFile.loaded`, which checks the hash), so the bytes of a
large pile are neither held by this process nor shipped to the workers.

A ``**`` glob or a folder input never enters a symbolic link to a folder: a link such as
``loop -> .`` would make the walk endless (glob.glob follows it, with memory growing per
level). Such a link becomes a ``SourceFile`` with ``skipped`` set and no data, so the
input report lists it as not followed; links to files are read like files.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import gzip
import hashlib
import os
import socket
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import InputSpec
from pipeline.errors import InputError

# Files with these suffixes are data tables or JSON: a folder holding any of them is a
# folder of data files, never a folder of plain-text documents.
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet")
TEXT_FOLDER = "text-folder"
# The input report's reader name for a link to a folder that a glob or folder walk did not enter.
LINK_NOT_FOLLOWED = "(link to a folder, not followed)"


@dataclass(frozen=True)
class SourceFile:
    """One input file's bytes (gunzipped) and where they came from.

    ``relpath`` is set for members of a folder input (POSIX path relative to ``folder``),
    so a text-folder reader can take the label from the parent directory name.
    ``mtime`` is the file's modification time (seconds since the epoch; None when unknown):
    it dates pages that say "Feb 10" without a year (``pipeline.parse.dates``).
    ``format`` is "text-folder" when this file is one document of a text folder
    (configured or recognised here from the folder's layout), else None: the parse stage
    then uses ``spec.format`` or sniffs the content. ``skipped`` is set (to the reader name
    the input report shows) for a link to a folder that was not entered: it has no data.
    ``data`` is None when the bytes were dropped after hashing (``collect_sources(...,
    keep_bytes=False)``): :meth:`loaded` reads them again where they are needed. ``size``
    (bytes of ``data``) and ``blank`` (it holds only white space) are set from ``data``
    when it is given.
    """

    path: str
    data: bytes | None = field(repr=False)
    sha256: str
    spec: InputSpec
    relpath: str | None = None
    folder: str | None = None
    format: str | None = None
    skipped: str | None = None
    mtime: float | None = None
    size: int = 0
    blank: bool = True

    def __post_init__(self) -> None:
        if self.data is not None:
            object.__setattr__(self, "size", len(self.data))
            object.__setattr__(self, "blank", not self.data or self.data.isspace())

    @property
    def content(self) -> bytes:
        """The file's bytes (gunzipped); only for a source read here or :meth:`loaded`."""
        if self.data is None:
            raise RuntimeError(f"{self.path}: its bytes were not kept; use SourceFile.loaded()")
        return self.data

    def loaded(self) -> SourceFile:
        """This file with its bytes, read again from ``path`` when only its hash was kept (on a Dask worker).

        Raises InputError when the file cannot be read there (a worker must see the same files:
        one machine, or a shared file system) or changed since the run took its hash.
        """
        if self.data is not None or self.skipped is not None:
            return self
        where = f"(read by path on a Dask worker, {socket.gethostname()}, which must see the run's input files)"
        raw = _raw_bytes(Path(self.path), where)
        if hashlib.sha256(raw).hexdigest() != self.sha256:
            raise InputError(f"{self.path}: the file changed while the run was reading it; run again")
        return dataclasses.replace(self, data=_gunzipped(Path(self.path), raw))


def collect_sources(specs: list[InputSpec], keep_bytes: bool = True) -> list[SourceFile]:
    """Read every file named by ``specs``, in spec order and sorted path order within a spec.

    ``keep_bytes`` False: each file's hash, size and blankness are taken and its bytes dropped
    (``SourceFile.data`` None; see the module's docstring).

    Raises InputError (one line naming the path) for a glob matching nothing, a missing,
    unreadable or empty-folder input, a broken link, a pipe or device, a bad gzip file, or a
    file given as a text folder.
    """
    sources: list[SourceFile] = []
    for spec in specs:
        for match in _matches(spec.path):
            if _is_folder_link(match) and glob.has_magic(spec.path):
                sources.append(_skipped_link(match, spec))
            elif match.is_dir():
                sources.extend(_read_folder(match, spec, keep_bytes))
            elif spec.format == TEXT_FOLDER:
                raise InputError(f"{match}: format 'text-folder' needs a folder of documents, not a file")
            else:
                sources.append(_read_file(match, spec, keep_bytes))
    return sources


def iter_glob(pattern: str) -> Iterator[str]:
    """Paths matching ``pattern`` like ``glob.glob(pattern, recursive=True)``, unsorted, lazily.

    Unlike glob.glob, ``**`` never enters a link to a folder: it yields the link itself
    instead (``collect_sources`` reports it). Hidden names match only a pattern part that
    starts with ".", as in glob.glob.
    """
    base = os.sep if pattern.startswith(os.sep) else ""
    parts = [part for part in pattern.split(os.sep) if part]
    if not parts:
        yield from [base] if base and os.path.lexists(base) else []
        return
    yield from _glob_from(base, parts)


def first_match(pattern: str) -> str | None:
    """The first path ``pattern`` matches that is not a link to a folder, else None; stops there."""
    return next((path for path in iter_glob(pattern) if not _is_folder_link(Path(path))), None)


def _glob_from(base: str, parts: list[str]) -> Iterator[str]:
    head, rest = parts[0], parts[1:]
    if head == "**":
        if rest:
            yield from _glob_from(base, rest)
        elif base:
            yield base
        for name, path in _children(base):
            if _hidden(name):
                continue
            if _is_folder_link(Path(path)):
                yield path  # reported, never entered
            elif os.path.isdir(path):
                yield from _glob_from(path, parts)
            elif not rest:
                yield path
        return
    if not glob.has_magic(head):
        path = os.path.join(base, head) if base else head
        if not rest:
            if os.path.lexists(path):
                yield path
        elif os.path.isdir(path):
            yield from _glob_from(path, rest)
        return
    for name, path in _children(base):
        if (_hidden(name) and not head.startswith(".")) or not fnmatch.fnmatchcase(name, head):
            continue
        if not rest:
            yield path
        elif os.path.isdir(path):
            yield from _glob_from(path, rest)


def _children(base: str) -> list[tuple[str, str]]:
    """(name, path) of every entry of folder ``base`` ("" = the working folder); none if unreadable."""
    try:
        names = os.listdir(base or os.curdir)
    except OSError:
        return []  # not a folder, or unreadable: glob.glob matches nothing there either
    return [(name, os.path.join(base, name) if base else name) for name in sorted(names)]


def _is_folder_link(path: Path) -> bool:
    return path.is_symlink() and path.is_dir()


def _skipped_link(path: Path, spec: InputSpec) -> SourceFile:
    try:
        target = os.readlink(path)
    except OSError:
        target = ""
    # The hash names the link's target, so re-pointing the link changes the parse stage's key.
    digest = hashlib.sha256(target.encode("utf-8", errors="surrogateescape")).hexdigest()
    return SourceFile(path=str(path), data=b"", sha256=digest, spec=spec, skipped=LINK_NOT_FOLLOWED)


def _matches(pattern: str) -> list[Path]:
    if glob.has_magic(pattern):
        found = sorted(dict.fromkeys(iter_glob(pattern)))
        if not found:
            raise InputError(f"{pattern}: the pattern matches no file or folder")
        return [Path(item) for item in found if not _hidden(Path(item).name)]
    path = Path(pattern)
    if not path.exists():
        raise InputError(f"{pattern}: no such file or folder")
    return [path]


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files under ``folder`` and the links to folders found there (rglob enters none)."""
    files, links = [], []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(_hidden(part) for part in relative.parts):
            continue
        if _is_folder_link(path):
            links.append(path)
        elif path.is_file():
            files.append(path)
    return files, links


def _is_text_folder(folder: Path, files: list[Path]) -> bool:
    """A folder of documents sorted into label sub-folders, with no data-file suffixes."""
    in_subfolders = [path for path in files if path.parent != folder]
    if not in_subfolders:
        return False
    return not any(_strip_gz(path.name).lower().endswith(DATA_SUFFIXES) for path in files)


def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _read_folder(folder: Path, spec: InputSpec, keep_bytes: bool = True) -> list[SourceFile]:
    files, links = _folder_files(folder)
    if not files:
        ignored = f" (only {len(links)} link(s) to folders, which are not followed)" if links else ""
        raise InputError(f"{folder}: the folder holds no files{ignored}")
    as_documents = spec.format == TEXT_FOLDER or (spec.format == "auto" and _is_text_folder(folder, files))
    # The links come last: a text folder's documents must stay together as one unit.
    return [
        _read_file(
            path,
            spec,
            keep_bytes,
            relpath=path.relative_to(folder).as_posix(),
            folder=str(folder),
            fmt=TEXT_FOLDER if as_documents else None,
        )
        for path in files
    ] + [_skipped_link(path, spec) for path in links]


def _read_file(
    path: Path,
    spec: InputSpec,
    keep_bytes: bool = True,
    relpath: str | None = None,
    folder: str | None = None,
    fmt: str | None = None,
) -> SourceFile:
    try:
        info = path.stat()
        mode = info.st_mode
    except FileNotFoundError:
        what = "is a broken symbolic link" if path.is_symlink() else "no such file"
        raise InputError(f"{path}: {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder where a file is needed")
    if not stat.S_ISREG(mode):
        # A named pipe or a device would block the run or never end: only regular files are inputs.
        raise InputError(f"{path}: not a regular file (a pipe, socket or device); give a file or a folder")
    raw = _raw_bytes(path)
    source = SourceFile(
        path=str(path),
        data=_gunzipped(path, raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        spec=spec,
        relpath=relpath,
        folder=folder,
        format=fmt,
        mtime=info.st_mtime,
    )
    return source if keep_bytes else dataclasses.replace(source, data=None)


def _raw_bytes(path: Path, where: str = "") -> bytes:
    """The file's bytes as stored; InputError (naming ``where`` it was read) when it cannot be read."""
    suffix = f" {where}" if where else ""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder where a file is needed{suffix}") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file{suffix}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc}){suffix}") from None


def _gunzipped(path: Path, raw: bytes) -> bytes:
    """``raw`` gunzipped when the file's name ends in .gz, else ``raw``."""
    if not path.name.lower().endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: not a valid gzip file ({exc})") from None
