"""Find and read the input files named by the config: the only filesystem code of the parse stage.

Each ``InputSpec.path`` is a file, a folder or a glob (``**`` allowed). Matches are read in
sorted order so a run is deterministic; ``*.gz`` files are gunzipped; the sha256 is taken
of the raw bytes as stored, so it changes exactly when the file changes. Hidden files
and folders (names starting with ".") are not inputs: they are editor and OS droppings.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import InputSpec
from pipeline.errors import InputError

# Files with these suffixes are data tables or JSON: a folder holding any of them is a
# folder of data files, never a folder of plain-text documents.
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet")
TEXT_FOLDER = "text-folder"


@dataclass(frozen=True)
class SourceFile:
    """One input file's bytes (gunzipped) and where they came from.

    ``relpath`` is set for members of a folder input (POSIX path relative to ``folder``),
    so a text-folder reader can take the label from the parent directory name.
    ``mtime`` is the file's modification time (seconds since the epoch; None when unknown):
    it dates pages that say "Feb 10" without a year (``pipeline.parse.dates``).
    ``format`` is "text-folder" when this file is one document of a text folder
    (configured or recognised here from the folder's layout), else None: the parse stage
    then uses ``spec.format`` or sniffs the content.
    """

    path: str
    data: bytes = field(repr=False)
    sha256: str
    spec: InputSpec
    relpath: str | None = None
    folder: str | None = None
    format: str | None = None
    mtime: float | None = None


def collect_sources(specs: list[InputSpec]) -> list[SourceFile]:
    """Read every file named by ``specs``, in spec order and sorted path order within a spec.

    Raises InputError (one line naming the path) for a glob matching nothing, a missing,
    unreadable or empty-folder input, a broken link, a pipe or device, a bad gzip file, or a
    file given as a text folder.
    """
    sources: list[SourceFile] = []
    for spec in specs:
        for match in _matches(spec.path):
            if match.is_dir():
                sources.extend(_read_folder(match, spec))
            elif spec.format == TEXT_FOLDER:
                raise InputError(f"{match}: format 'text-folder' needs a folder of documents, not a file")
            else:
                sources.append(_read_file(match, spec))
    return sources


def _matches(pattern: str) -> list[Path]:
    if glob.has_magic(pattern):
        found = sorted(glob.glob(pattern, recursive=True))
        if not found:
            raise InputError(f"{pattern}: the pattern matches no file or folder")
        return [Path(item) for item in found if not _hidden(Path(item).name)]
    path = Path(pattern)
    if not path.exists():
        raise InputError(f"{pattern}: no such file or folder")
    return [path]


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _folder_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(_hidden(part) for part in relative.parts) or not path.is_file():
            continue
        files.append(path)
    return files


def _is_text_folder(folder: Path, files: list[Path]) -> bool:
    """A folder of documents sorted into label sub-folders, with no data-file suffixes."""
    in_subfolders = [path for path in files if path.parent != folder]
    if not in_subfolders:
        return False
    return not any(_strip_gz(path.name).lower().endswith(DATA_SUFFIXES) for path in files)


def _strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _read_folder(folder: Path, spec: InputSpec) -> list[SourceFile]:
    files = _folder_files(folder)
    if not files:
        raise InputError(f"{folder}: the folder holds no files")
    as_documents = spec.format == TEXT_FOLDER or (spec.format == "auto" and _is_text_folder(folder, files))
    return [
        _read_file(
            path,
            spec,
            relpath=path.relative_to(folder).as_posix(),
            folder=str(folder),
            fmt=TEXT_FOLDER if as_documents else None,
        )
        for path in files
    ]


def _read_file(
    path: Path, spec: InputSpec, relpath: str | None = None, folder: str | None = None, fmt: str | None = None
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
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder where a file is needed") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    data = raw
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: not a valid gzip file ({exc})") from None
    return SourceFile(
        path=str(path),
        data=data,
        sha256=hashlib.sha256(raw).hexdigest(),
        spec=spec,
        relpath=relpath,
        folder=folder,
        format=fmt,
        mtime=info.st_mtime,
    )
