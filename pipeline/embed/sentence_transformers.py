"""The reference backend: sentence-transformers on PyTorch, on the CPU, offline.

The faster backends are measured against its vectors (the fp32 ONNX export equals them,
cosine > 0.999). The model is loaded from its local folder only (``local_files_only``).

Every text runs alone, in a batch of one without padding, as in the ONNX backends
(``onnx.py``): in padded batches the same text got another vector in other company (up to
7e-8 per element), enough to change a feed's clusters (33 vs 34) with the cache's history.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.embed.models import weights_digest

# Bump when the way texts are fed to the model changes its vectors: it keys the embedding cache
# (2: every text alone; 1 was padded batches of embed.batch_size).
ENCODE_VERSION = 2


@dataclass
class SentenceTransformerBackend:
    """sentence-transformers on the CPU, offline: the reference the faster backends are measured against."""

    model_dir: Path
    max_tokens: int
    model_key: str = ""

    def __post_init__(self) -> None:
        self.model_key = (
            f"st-{self.model_dir.name}-{weights_digest(self.model_dir)}-t{self.max_tokens}-e{ENCODE_VERSION}"
        )

    @functools.cached_property
    def _model(self):
        from sentence_transformers import SentenceTransformer

        # A model that is not on disk must fail, never be fetched.
        model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        model.max_seq_length = self.max_tokens
        return model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors in input order, ndarray of shape (len(texts), dim).

        Each text is its own batch of one (nothing padded), so its vector does not depend on the other texts.
        """
        vectors = self._model.encode(
            texts, batch_size=1, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
