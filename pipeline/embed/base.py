"""What every embedding backend is, and the batching all of them share.

A backend is anything with a ``model_key`` (it names the model and its settings; the
embedding cache is keyed by it) and ``encode(texts)``. :func:`embed_texts` feeds a backend
texts longest first, in chunks, and puts the vectors back in input order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

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
