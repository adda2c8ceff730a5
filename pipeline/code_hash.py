"""The hash of the code a stage runs: the source of its import closure within this package.

A stage's cache key holds :func:`code_hash` of its module (``Stage.module``, its ``__name__``):
the bytes of every module of the ``pipeline`` package that the stage module imports, directly
or through the modules it imports, at the top or inside a function, with the parent packages
each import runs (``pipeline/label/__init__.py`` for ``pipeline.label.cache``) and a
package's data files (``pipeline/report/templates/``). So a change to code a stage runs
recomputes that stage, and a change anywhere else recomputes nothing; no number is bumped by
hand (Hamilton hashes a node's source the same way).

Imports are read from the source text with regular expressions (``import a.b``,
``from a import b, c``, ``from . import b``, parenthesised over several lines); those under
``if TYPE_CHECKING:`` are left out, as they never run. ``tests/test_code_hash.py`` checks that
this reading agrees with Python's own parser (``ast``) on every module of the package; it is
used instead because it costs 19 ms of CPU for all five stages where ``ast`` takes 185 ms
(``bench/code_hash.py``). Everything is kept per process: the source does not change while
a run runs. The memos stages keep between runs key their values the same way
(``pipeline.label.cache``, ``pipeline.parse.units``).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import os
import re
from collections.abc import Collection
from pathlib import Path

PACKAGE = "pipeline"
# The folder that holds the package folder: the repository root (or an installed site-packages).
SOURCE_ROOT = Path(__file__).resolve().parent.parent

_TYPE_CHECKING = re.compile(r"^([ \t]*)if[ \t]+(?:typing\.)?TYPE_CHECKING[ \t]*:.*$", re.M)
_STATEMENT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|.*)|import[ \t]+(.*))$", re.M)
_COMMENT = re.compile(r"#[^\n]*")


@functools.cache
def module_files(root: Path = SOURCE_ROOT) -> dict[str, Path]:
    """Every module of the package under ``root`` by dotted name (a package: its ``__init__.py``)."""
    found: dict[str, Path] = {}
    for folder, folders, files in os.walk(root / PACKAGE):
        if "__init__.py" not in files:
            folders[:] = []  # a data folder (templates): no module below it
            continue
        folders[:] = [name for name in folders if not name.startswith((".", "__pycache__"))]
        package = Path(folder).relative_to(root).parts
        for name in files:
            if name.endswith(".py"):
                parts = package if name == "__init__.py" else (*package, name.removesuffix(".py"))
                found[".".join(parts)] = Path(folder) / name
    return found


def _skipped_spans(source: str) -> list[tuple[int, int]]:
    """The (start, end) offsets of the triple-quoted strings and ``if TYPE_CHECKING:`` blocks, in order."""
    spans = []
    at = 0
    while True:
        opening = [found for found in (source.find('"""', at), source.find("'''", at)) if found >= 0]
        if not opening:
            break
        start = min(opening)
        end = source.find(source[start : start + 3], start + 3)
        at = len(source) if end < 0 else end + 3
        spans.append((start, at))
    if "TYPE_CHECKING" in source:
        for found in _TYPE_CHECKING.finditer(source):
            indent, end = len(found.group(1)), found.end() + 1
            for line in source[end:].splitlines(keepends=True):
                if line.strip() and len(line) - len(line.lstrip()) <= indent:
                    break
                end += len(line)
            spans.append((found.start(), end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):  # a docstring inside a TYPE_CHECKING block is part of the block
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def import_statements(source: str) -> list[tuple[str, str, list[str]]]:
    """The import statements of ``source`` that can run: (dots, module, names) for each.

    ``from ..a import b, c as d`` gives ("..", "a", ["b", "c"]), ``import a.b as c, d`` gives
    ("", "", ["a.b", "d"]). Triple-quoted strings (docstrings) and the body of an
    ``if TYPE_CHECKING:`` block are left out.
    """
    skipped = _skipped_spans(source)
    starts = [start for start, _end in skipped]
    statements = []
    for found in _STATEMENT.finditer(source):
        at = bisect.bisect_right(starts, found.start()) - 1
        if at >= 0 and found.start() < skipped[at][1]:
            continue
        dots, base, names, plain = found.groups()
        listed = plain or names
        if "#" in listed:
            listed = _COMMENT.sub("", listed)
        listed = listed.replace("\\", " ").strip().strip("()")
        aliases = [alias.split(" as ")[0].strip() for alias in " ".join(listed.split()).split(",")]
        statements.append((dots or "", base or "", [alias for alias in aliases if alias and alias != "*"]))
    return statements


def imported_names(module: str, source: str, is_package: bool, modules: Collection[str] = ()) -> set[str]:
    """The dotted names ``source`` (of the module ``module``) may import, relative imports resolved.

    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule); names that are no
    module of the package are dropped by :func:`closure`. When every name it imports is one of
    ``modules`` (``from pipeline import terms``), ``a`` runs only as their parent package and is
    not given: its own lazy imports (``pipeline.__getattr__`` importing the public API) are not
    what the importing module runs.
    """
    names: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for dots, base, imported in import_statements(source):
        if dots:
            anchor = package[: len(package) - (len(dots) - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        if base:
            submodules = {f"{base}.{name}" for name in imported}
            if not (imported and submodules <= set(modules)):
                names.add(base)
            names.update(submodules)
        else:
            names.update(imported)
    return names


@functools.cache
def _module_imports(module: str, root: Path) -> frozenset[str]:
    path = module_files(root)[module]
    known = module_files(root)
    return frozenset(imported_names(module, _source(path).decode("utf-8"), path.name == "__init__.py", known))


@functools.cache
def _source(path: Path) -> bytes:
    return path.read_bytes()


@functools.cache
def closure(module: str, root: Path = SOURCE_ROOT) -> tuple[str, ...]:
    """The modules of the package that importing and running ``module`` may run, sorted, itself included.

    A module named by an import is followed (its own imports join the closure). Its parent
    packages run first (``pipeline/stages/__init__.py`` before ``pipeline.stages.embed``) and
    so join too, but their imports are not followed unless an import names the package
    itself: the stage list imports every stage, and none runs another's code.
    """
    known = module_files(root)
    if module not in known:
        raise ValueError(f"{module}: no such module in {root / PACKAGE}")
    included: set[str] = set()
    followed: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in followed or name not in known:
            continue
        followed.add(name)
        parts = name.split(".")
        included.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
        if name != PACKAGE:  # the root package's own imports are the public API's, loaded on a user's first call
            pending.extend(_module_imports(name, root))
    return tuple(sorted(included))


def _files(module: str, root: Path) -> list[Path]:
    """The module's source file and, for a package, its data files (in folders that hold no module)."""
    path = module_files(root)[module]
    if path.name != "__init__.py":
        return [path]
    data: list[Path] = []
    for entry in path.parent.iterdir():
        if entry.is_dir() and not entry.name.startswith((".", "__pycache__")) and not (entry / "__init__.py").exists():
            data.extend(file for file in entry.rglob("*") if file.is_file() and "__pycache__" not in file.parts)
    return [path, *sorted(data)]


@functools.cache
def code_hash(module: str, root: Path = SOURCE_ROOT) -> str:
    """sha256 of the source of ``module``'s import closure: each file's path under ``root`` and its bytes."""
    digest = hashlib.sha256()
    for name in closure(module, root):
        for path in _files(name, root):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + _source(path) + b"\0")
    return digest.hexdigest()
