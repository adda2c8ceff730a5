"""Embed stage: the papers' texts in, one unit-length vector per paper out.

Vectors are kept between runs per (model, text) in the store's memo, shared by every run
under one output folder: a second run, or a run with more papers, embeds only the texts
no run has embedded yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import RunConfig
from pipeline.files import array_to_bytes
from pipeline.memo import MemoStore, VectorRows, text_key
from pipeline.schema import paper_texts
from pipeline.stage import ProgressCallback, Stage, StageContext, StageResult

if TYPE_CHECKING:
    from pipeline.embed import EmbeddingBackend


def _settings(config: RunConfig) -> dict[str, Any]:
    return config.embed.model_dump()


def _model(context: StageContext) -> list[str]:
    from pipeline.embed import model_identity

    return [model_identity(context.config.embed)]


# Texts embedded between two writes to the memo: a killed run keeps all but the last shard of
# its work (at 2 cores, 4,096 texts are about half a minute of int8 MiniLM).
SHARD_ROWS = 4096


def cached_embeddings(
    cache: MemoStore, backend: EmbeddingBackend, texts: list[str], progress: ProgressCallback | None = None
) -> tuple[np.ndarray, int]:
    """The texts' vectors, ndarray of shape (len(texts), dim), and how many were embedded now.

    Texts no run has embedded with this model yet are embedded (each at most once) and kept,
    ``SHARD_ROWS`` at a time, so a killed run resumes where it stopped.
    Also used by the benchmarks, which embed the same corpora as the runs.
    """
    from pipeline.embed import embed_texts

    def compute(indices: list[int]) -> np.ndarray:
        return embed_texts([texts[index] for index in indices], backend)

    vectors, embedded = cache.memo_rows(
        f"embeddings/{backend.model_key}",
        [text_key(text) for text in texts],
        compute,
        VectorRows(),
        shard_rows=SHARD_ROWS,
        progress=progress,
    )
    return vectors.astype(np.float32), embedded


def run(context: StageContext) -> StageResult:
    from pipeline.embed import load_backend

    texts = paper_texts(context.store.read_table("parse", "papers.parquet"))
    backend = load_backend(context.config.embed, context.store.cache_dir)
    embeddings, embedded = cached_embeddings(context.store.cache, backend, texts, context.progress)
    counts = {"papers": len(texts), "embedded": embedded, "from_cache": len(texts) - embedded}
    return {"embeddings.npy": array_to_bytes(embeddings)}, counts


def embeddings_for(cache_dir: Path, backend: EmbeddingBackend, texts: list[str]) -> np.ndarray:
    """The vectors of ``texts`` through the embedding memo under ``cache_dir`` (for benchmarks)."""
    return cached_embeddings(MemoStore(cache_dir), backend, texts)[0]


STAGE = Stage(
    name="embed",
    code_version=2,
    inputs=(("parse", "papers.parquet"),),
    outputs=("embeddings.npy",),
    config_slice=_settings,
    run=run,
    extra_key=_model,
    modules=("pipeline.stages.embed", "pipeline.embed"),
)
