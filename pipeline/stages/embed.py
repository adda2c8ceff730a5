"""Embed stage: the papers' texts in, one unit-length vector per paper out.

Vectors are kept between runs per (model, text) in the store's memo, shared by every run
under one output folder: a second run, or a run with more papers, embeds only the texts
no run has embedded yet.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import EmbedConfig, RunConfig
from pipeline.files import array_to_bytes
from pipeline.memo import MemoStore, VectorRows, text_key
from pipeline.schema import TEXT_COLUMNS, PaperTexts, texts_at
from pipeline.stage import ProgressCallback, Stage, StageContext, StageResult

if TYPE_CHECKING:
    from pipeline.embed import EmbeddingBackend
    from pipeline.engine import Engine


def _settings(config: RunConfig) -> dict[str, Any]:
    # Where built models are kept changes no vector.
    return config.embed.model_dump(exclude={"model_cache"})


def _model(context: StageContext) -> list[str]:
    from pipeline.embed import model_identity

    return [model_identity(context.config.embed)]


# Texts embedded between two writes to the memo: a killed run keeps all but the last shard of
# its work (at 2 cores, 4,096 texts are about half a minute of int8 MiniLM).
SHARD_ROWS = 4096
# A shard is also written when this many seconds passed since the last one, so that a killed run
# loses at most about this much work (plus one chunk) whatever the model's speed: the PyTorch
# reference embeds a few dozen texts a second on 2 cores, and lost minutes below 4,096 texts.
SAVE_EVERY_S = 15.0
# Texts per call to the backend in this process, between two looks at the clock (a chunk costs
# about a second with int8 MiniLM on 2 cores and a few with the PyTorch reference). On Dask
# workers a whole shard is one map, as before: a map's start-up would cost more than it saves.
CHUNK_ROWS = 128


# On Dask workers, shards started before the one being stored: while the driver stores one shard
# and makes the texts of the next, the workers embed a third instead of waiting (the driver's share
# was serial with theirs: about 1.3 of 2 cores busy in the stage at a million papers).
SHARDS_AHEAD = 2

# How long one part of a shard may take on a worker before the run stops with an error.
EMBED_PART_TIMEOUT_S = 3600.0


def _embed_part(texts: list[str], *, config: EmbedConfig) -> np.ndarray:
    """Vectors of ``texts`` on a worker, with the backend that worker loaded once."""
    from pipeline.embed import embed_texts, load_backend, model_identity
    from pipeline.engine import worker_cached

    backend = worker_cached(f"embed:{model_identity(config)}", lambda: load_backend(config))
    return embed_texts(texts, backend)


def cached_embeddings(
    cache: MemoStore,
    backend: EmbeddingBackend,
    texts: Sequence[str],
    progress: ProgressCallback | None = None,
    engine: Engine | None = None,
    embed_config: EmbedConfig | None = None,
) -> tuple[np.ndarray, int]:
    """The texts' vectors, ndarray of shape (len(texts), dim), and how many were embedded now.

    Texts no run has embedded with this model yet are embedded (each at most once) and kept,
    ``SHARD_ROWS`` at a time or every ``SAVE_EVERY_S`` seconds, so a killed run resumes about
    where it stopped. With an ``engine`` of several workers (and the ``embed_config`` they load
    the backend from), each shard is embedded in parts on the workers: a text's vector depends on the text alone, so the
    vectors are the same as in this process.
    Also used by the benchmarks, which embed the same corpora as the runs.
    """
    from pipeline.embed import embed_texts
    from pipeline.engine import LocalEngine

    built = False
    in_process_lock = threading.Lock()
    # Asking a Dask engine for its workers starts its cluster: only when a text is missing.
    in_process = engine is None or embed_config is None or isinstance(engine, LocalEngine)

    def compute(indices: list[int]) -> np.ndarray:
        # On Dask workers, called from threads after the first call (``MemoStore.memo_rows``'s ``ahead``),
        # which builds the model and starts the cluster alone.
        nonlocal built
        if engine is None or engine.n_workers <= 1 or embed_config is None:
            with in_process_lock:  # one call of the backend at a time here, whatever the thread
                return embed_texts(texts_at(texts, np.asarray(indices)), backend)
        if not built:
            # A backend builds its model (ONNX export, model2vec distillation) on first use, in a
            # child process: here, once, not on each worker, where a daemonic worker may not start
            # children ("daemonic processes are not allowed to have children") and two would race.
            embed_texts([texts[indices[0]]], backend)
            built = True
        parts = [part for part in np.array_split(np.asarray(indices), engine.n_workers * 2) if len(part)]
        vectors = engine.map(
            _embed_part, [texts_at(texts, part) for part in parts], timeout_s=EMBED_PART_TIMEOUT_S,
            common={"config": embed_config},
        )  # fmt: skip
        return np.concatenate(vectors)

    vectors, embedded = cache.memo_rows(
        f"embeddings/{backend.model_key}",
        [text_key(text) for text in texts],
        compute,
        VectorRows(),
        shard_rows=SHARD_ROWS,
        progress=progress,
        chunk_rows=CHUNK_ROWS if in_process else None,
        save_every_s=SAVE_EVERY_S,
        ahead=0 if in_process else SHARDS_AHEAD,
    )
    return np.asarray(vectors, dtype=np.float32), embedded  # no copy of the float32 rows (1 GB at 1M papers)


def run(context: StageContext) -> StageResult:
    from pipeline.embed import load_backend

    # Each text is needed once (its key, then the shard that embeds it): made when asked for.
    texts = PaperTexts(context.store.read_table("parse", "papers.parquet", TEXT_COLUMNS))
    backend = load_backend(context.config.embed)
    embeddings, embedded = cached_embeddings(
        context.store.cache, backend, texts, context.progress, context.engine, context.config.embed
    )
    counts = {"papers": len(texts), "embedded": embedded, "from_cache": len(texts) - embedded}
    return {"embeddings.npy": array_to_bytes(embeddings)}, counts


def embeddings_for(cache_dir: Path, backend: EmbeddingBackend, texts: list[str]) -> np.ndarray:
    """The vectors of ``texts`` through the embedding memo under ``cache_dir`` (for benchmarks)."""
    return cached_embeddings(MemoStore(cache_dir), backend, texts)[0]


STAGE = Stage(
    name="embed",
    inputs=(("parse", "papers.parquet"),),
    outputs=("embeddings.npy",),
    config_slice=_settings,
    run=run,
    module=__name__,
    extra_key=_model,
    uses_engine=True,
)
