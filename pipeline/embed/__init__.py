"""Embed stage: paper texts in, unit-length vectors out.

Backends sit behind a tiny interface and are picked from ``BACKENDS``:

- ``onnx-int8`` (the default, quality mode): all-MiniLM-L6-v2 exported once to ONNX with
  ``torch.onnx.export``, its layers fused and its weights quantised to int8, run with
  onnxruntime; no torch at run time (``onnx.py``).
- ``onnx``: the same export in fp32, equal to sentence-transformers' vectors (cosine > 0.999).
- ``sentence-transformers``: the reference, PyTorch (``sentence_transformers.py``).
- ``model2vec`` (preview mode): a static model distilled once from the same MiniLM; many
  times faster and visibly coarser topics (``static.py``).

The package's modules:

- ``base.py``: the backend protocol (``EmbeddingBackend``) and the batching every backend
  shares (``embed_texts``);
- ``models.py``: model folders (packaged or local, never downloaded), the weights digest,
  the check for a backend's packages, and the cache of built models (``built_model_dir``);
- one module per backend, each importing only ``base`` and ``models``;
- this file: the registry ``BACKENDS``, ``load_backend`` and ``model_identity``.

A missing model or backend dependency stops the run with a message instead of a fallback.
The caching of vectors by text hash is done by the runner with the store; this package only
turns texts into vectors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from pipeline.config import EmbedConfig
from pipeline.embed.base import EmbeddingBackend, ProgressCallback, embed_texts
from pipeline.embed.models import (
    PACKAGED_MODELS,
    build_is_intact,
    built_model_dir,
    model_cache_dir,
    model_name,
    require_modules,
    resolve_model_dir,
    weights_digest,
)

__all__ = [
    "BACKENDS",
    "PACKAGED_MODELS",
    "EmbeddingBackend",
    "ProgressCallback",
    "build_is_intact",
    "built_model_dir",
    "embed_texts",
    "load_backend",
    "model_cache_dir",
    "model_identity",
    "model_name",
    "require_modules",
    "resolve_model_dir",
    "weights_digest",
]


def _sentence_transformers(config: EmbedConfig, model_cache: Path) -> EmbeddingBackend:
    require_modules(config.backend, {"sentence_transformers": "sentence-transformers", "torch": "torch"})
    from pipeline.embed.sentence_transformers import SentenceTransformerBackend

    return SentenceTransformerBackend(resolve_model_dir(config.model), config.tokens)


def _onnx(quantized: bool) -> Callable[[EmbedConfig, Path], EmbeddingBackend]:
    def make(config: EmbedConfig, model_cache: Path) -> EmbeddingBackend:
        require_modules(config.backend, {"onnxruntime": "onnxruntime", "tokenizers": "tokenizers"})
        from pipeline.embed.onnx import OnnxBackend

        model_dir = resolve_model_dir(config.model)
        variant = "int8" if quantized else "fp32"
        return OnnxBackend(model_name(config.model), model_dir, variant, config.tokens, model_cache)

    return make


def _model2vec(config: EmbedConfig, model_cache: Path) -> EmbeddingBackend:
    require_modules(config.backend, {"model2vec": "model2vec"})
    from pipeline.embed.static import StaticBackend

    return StaticBackend(model_name(config.model), resolve_model_dir(config.model), config.tokens, model_cache)


# Factories take the embed config and the model cache folder; they check what the backend needs
# (packages, model files) and compute its model key without loading or building a model.
BACKENDS: dict[str, Callable[[EmbedConfig, Path], EmbeddingBackend]] = {
    "onnx-int8": _onnx(quantized=True),
    "onnx": _onnx(quantized=False),
    "sentence-transformers": _sentence_transformers,
    "model2vec": _model2vec,
}


@functools.cache
def load_backend(config: EmbedConfig, model_cache: Path | None = None) -> EmbeddingBackend:
    """The configured backend; cached so one process loads a model once.

    Built models go to ``<model_cache>/models/``; by default the user's model cache,
    shared by every project folder (``model_cache_dir``: ``embed.model_cache``,
    ``$PAPERTOPICS_CACHE``, ``$XDG_CACHE_HOME/papertopics`` or ``~/.cache/papertopics``).
    The model itself loads, or is built, on first use.
    """
    folder = Path(model_cache) if model_cache is not None else model_cache_dir(config)
    return BACKENDS[config.backend](config, folder)


def model_identity(config: EmbedConfig) -> str:
    """The model key of the configured backend, without loading the model (no torch import)."""
    return load_backend(config).model_key
