"""The reference backend: sentence-transformers on PyTorch, on the CPU, offline.

The faster backends are measured against its vectors (the fp32 ONNX export equals them,
cosine > 0.999). The model is loaded from its local folder only (``local_files_only``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.embed.models import weights_digest


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
        from sentence_transformers import SentenceTransformer

        # A model that is not on disk must fail, never be fetched.
        model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        model.max_seq_length = self.max_tokens
        return model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors in input order, ndarray of shape (len(texts), dim)."""
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
