"""Cluster stage: the vectors in, topic labels, the reduced vectors and the 2-D map out.

When the last clustering was made with the same settings and model, and the corpus only
grew by a few papers (``cluster.incremental_max_share``), the new papers join it through
their nearest neighbours instead of a full recluster.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import RunConfig
from pipeline.files import array_to_bytes, hash_json, json_to_bytes, sha256_bytes, table_to_bytes
from pipeline.stage import Stage, StageContext, StageResult

if TYPE_CHECKING:
    from pipeline.cluster import ClusterResult

log = logging.getLogger(__name__)


def _settings(config: RunConfig) -> dict[str, Any]:
    return {"seed": config.seed, **config.cluster.model_dump()}


def _previous_clusters(context: StageContext, paper_ids: list[str]) -> tuple[ClusterResult, list[str]] | None:
    """The last finished clustering and its paper ids, when new papers may simply join it.

    That is when it was made with the same settings and embedding model, every paper it
    clustered is still in the corpus, and the new papers are at most
    ``incremental_max_share`` of it. Its files are checked against the hashes it recorded,
    so a clustering half-overwritten by a killed run is never used.
    """
    from pipeline.cluster import ClusterResult
    from pipeline.embed import model_identity

    config, store, record = context.config, context.store, context.previous
    if not config.cluster.incremental or record is None or context.forced:
        return None
    folder = store.stage_dir("cluster")
    try:
        if any(sha256_bytes((folder / name).read_bytes()) != digest for name, digest in record.output_hashes.items()):
            return None
        meta = store.read_json("cluster", "cluster.json")
        old_ids = store.read_table("cluster", "paper_ids.parquet")["paper_id"].tolist()
    except (FileNotFoundError, KeyError, ValueError):
        return None
    if meta.get("settings") != hash_json(_settings(config)) or meta.get("model") != model_identity(config.embed):
        return None
    current = set(paper_ids)
    n_new = len(current) - len(old_ids)
    if not set(old_ids) <= current or n_new <= 0 or n_new > config.cluster.incremental_max_share * len(old_ids):
        return None
    previous = ClusterResult(
        labels=store.read_array("cluster", "labels.npy"),
        reduced=store.read_array("cluster", "reduced.npy"),
        layout=store.read_array("cluster", "layout.npy"),
        params=meta["params"],
        notes=meta["notes"],
    )
    return previous, old_ids


def run(context: StageContext) -> StageResult:
    from pipeline.cluster import cluster_papers, grow_clusters
    from pipeline.embed import model_identity

    config = context.config
    embeddings = context.store.read_array("embed", "embeddings.npy")
    paper_ids = context.store.read_table("parse", "papers.parquet")["paper_id"].tolist()
    found = _previous_clusters(context, paper_ids)
    if found is None:
        result = cluster_papers(embeddings, config.cluster, config.seed)
        n_incremental = 0
    else:
        previous, old_ids = found
        row_of = {paper_id: row for row, paper_id in enumerate(paper_ids)}
        result = grow_clusters(previous, embeddings, np.array([row_of[paper_id] for paper_id in old_ids]))
        n_incremental = len(paper_ids) - len(old_ids)
    for note in result.notes:
        log.info("cluster: %s", note)
    n_clusters = len(set(result.labels.tolist()) - {-1})
    counts = {"papers": len(result.labels), "clusters": n_clusters, "outliers": int((result.labels < 0).sum())}
    if n_incremental:
        counts["incremental"] = n_incremental
    meta = {
        "params": result.params,
        "notes": result.notes,
        "settings": hash_json(_settings(config)),
        "model": model_identity(config.embed),
    }
    ids_table = pd.DataFrame({"paper_id": pd.Series(paper_ids, dtype="string")})
    outputs = {
        "labels.npy": array_to_bytes(result.labels),
        "reduced.npy": array_to_bytes(result.reduced),
        "layout.npy": array_to_bytes(result.layout),
        "paper_ids.parquet": table_to_bytes(ids_table),
        "cluster.json": json_to_bytes(meta),
    }
    return outputs, counts


STAGE = Stage(
    name="cluster",
    code_version=3,
    inputs=(("embed", "embeddings.npy"), ("parse", "papers.parquet")),
    outputs=("labels.npy", "reduced.npy", "layout.npy", "paper_ids.parquet", "cluster.json"),
    config_slice=_settings,
    run=run,
    modules=("pipeline.stages.cluster", "pipeline.cluster", "pipeline.parallel"),
)
