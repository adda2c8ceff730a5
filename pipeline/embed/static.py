"""Preview backend: a static model2vec model distilled once from the configured transformer.

``model2vec``'s distillation runs every token of the model's vocabulary through the
transformer once, reduces the token vectors with PCA and weights them by token frequency;
a text's vector is then the mean of its tokens' vectors: no network at embedding time, so
tens of times faster than MiniLM on a CPU, at the price of coarser topics (docs/benchmarks.md's
"Embedding backends" table has the numbers). The distilled model is cached in
``<model cache>/models/<key>/``, keyed by the source model's weights digest.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.embed.models import built_model_dir, require_modules, weights_digest
from pipeline.parallel import built_beside

log = logging.getLogger(__name__)

# Bump when the distillation settings below change: it keys the model cache and the embedding cache.
BUILD_VERSION = 1
# model2vec's default: 256 PCA dimensions keep nearly all of the token vectors' variance.
PCA_DIMS = 256
# model2vec's default (1e-4) down-weights frequent tokens like SIF.
SIF_COEFFICIENT = 1e-4


def distill(model_dir: Path, folder: Path) -> dict[str, Any]:
    """Distill `model_dir` into a static model saved in `folder`.

    The distillation runs in a spawned child process: model2vec draws a tqdm bar on the
    process's stderr while it embeds the vocabulary, and library code prints nothing, so the
    child sends what it would have printed back here, where it is logged at debug level
    (torch's memory is given back when the child ends, too).
    """
    require_modules("model2vec", {"model2vec": "model2vec[distill]", "torch": "torch", "transformers": "transformers"})
    log.info("distilling a model2vec model from %s (once; cached in %s)", model_dir.name, folder.parent)
    job = functools.partial(_distill_here, model_dir, folder)
    with built_beside(job, "spawn", what=f"the model2vec distillation of {model_dir.name}") as wait:
        facts, printed = wait()
    if printed.strip():
        log.debug("model2vec distillation output:\n%s", printed.rstrip())
    return facts


def _distill_here(model_dir: Path, folder: Path) -> tuple[dict[str, Any], str]:
    """The distillation itself (in the child process); returns the build facts and what it printed."""
    import model2vec
    from transformers import AutoModel, AutoTokenizer

    try:
        from model2vec.distill import distill_from_model
    except ImportError as exc:  # model2vec without its [distill] extra
        raise ImportError(f"embed.backend 'model2vec' needs model2vec[distill] to build its model: {exc}") from exc

    # Read from the folder only: a model that is not on disk must fail, never be fetched.
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)  # fast or slow: both distil
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore")
        static = distill_from_model(
            model=model, tokenizer=tokenizer, device="cpu", pca_dims=PCA_DIMS, sif_coefficient=SIF_COEFFICIENT
        )
    static.save_pretrained(str(folder))
    return {"source": str(model_dir), "model2vec": model2vec.__version__, "pca_dims": PCA_DIMS}, printed.getvalue()


@dataclass
class StaticBackend:
    """A model2vec static model: the mean of token vectors, normalised."""

    name: str  # the model's name or folder name, for people reading the cache folder
    model_dir: Path
    max_tokens: int
    model_cache: Path
    model_key: str = ""
    build_key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        digest = weights_digest(self.model_dir)
        self.build_key = f"{self.name}-{digest}-model2vec-d{PCA_DIMS}-v{BUILD_VERSION}"
        self.model_key = f"{self.build_key}-t{self.max_tokens}"

    @functools.cached_property
    def folder(self) -> Path:
        """The distilled model's folder, built on first use."""
        return built_model_dir(self.model_cache, self.build_key, lambda folder: distill(self.model_dir, folder))

    @functools.cached_property
    def _model(self):
        from model2vec import StaticModel

        return StaticModel.from_pretrained(str(self.folder))

    @functools.cached_property
    def _word_ids(self):
        """Tokens looked up word by word (``word_ids.py``), for a model of the shape it imitates; else None."""
        from pipeline.embed.word_ids import WordIds, fits

        return WordIds(self._model.tokenizer, drop_id=self._model.unk_token_id) if fits(self._model) else None

    @functools.cached_property
    def _table(self) -> np.ndarray:
        """The model's token vectors in float32, ndarray of shape (vocabulary, dim)."""
        return np.asarray(self._model.embedding, dtype=np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors in input order, ndarray of shape (len(texts), dim)."""
        model = self._model
        if self._word_ids is None:
            vectors = model.encode(
                list(texts), max_length=self.max_tokens, show_progress_bar=False, use_multiprocessing=False
            )
        else:
            from pipeline.embed.word_ids import mean_vectors

            # model2vec's encode: each text cut to max_tokens times its median token length in characters, then
            # its ids to max_tokens; the same vectors, bit for bit (tests/test_word_ids.py).
            characters = self.max_tokens * model.median_token_length
            ids, counts = self._word_ids([text[:characters] for text in texts], self.max_tokens)
            vectors = mean_vectors(self._table, model.embedding.dtype, ids, counts, model.normalize)
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
