"""Cluster stage: the vectors in, topic labels, the reduced vectors and the 2-D map out.

When the last clustering was made with the same settings and model and the corpus grew,
the new papers join it (``pipeline.feed.update``: nearest centroid under the outlier bar,
dense groups of the papers that fit nowhere become new clusters) instead of a full
recluster, until the drift bar there is passed or ``--force cluster`` is given.

A full recluster of a run clustered before with the same settings and model is guided by
that clustering (semi-supervised UMAP, ``cluster.recluster_guide``): topics that still hold
come back with the same members, so the label stage keeps their ids. A first run, or one
with other settings, is never guided: tuning a setting gives what a fresh run gives. A
recluster of exactly the papers of a full clustering repeats that clustering's own guide
(none for a first run), so the same config on the same inputs gives the same topics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.cluster import ClusterResult
from pipeline.config import RunConfig
from pipeline.files import array_to_bytes, hash_json, json_to_bytes, sha256_bytes, table_to_bytes
from pipeline.stage import Stage, StageContext, StageResult

if TYPE_CHECKING:
    from pipeline.feed.update import Update

log = logging.getLogger(__name__)


def _settings(config: RunConfig) -> dict[str, Any]:
    # New papers join a cluster under the label stage's outlier bar (pipeline.feed.update).
    return {"seed": config.seed, **config.cluster.model_dump(), "outlier_percentile": config.label.outlier_percentile}


@dataclass(frozen=True)
class _Previous:
    result: ClusterResult
    paper_ids: list[str]
    pool: np.ndarray  # bool per old paper: fit no cluster since the last full clustering
    base_papers: int  # papers of the last full clustering
    guide: np.ndarray  # the guide the last clustering was made with, when a full one (empty: none)


def _last_clustering(context: StageContext) -> _Previous | None:
    """The last finished clustering of this run folder, when made with the same settings and model.

    Its files are checked against the hashes it recorded, so a clustering half-overwritten by
    a killed run is never used.
    """
    from pipeline.embed import model_identity

    config, store, record = context.config, context.store, context.previous
    if record is None:
        return None
    folder = store.stage_dir("cluster")
    try:
        if any(sha256_bytes((folder / name).read_bytes()) != digest for name, digest in record.output_hashes.items()):
            return None
        meta = store.read_json("cluster", "cluster.json")
        old_ids = store.read_table("cluster", "paper_ids.parquet")["paper_id"].tolist()
        pool = store.read_array("cluster", "pool.npy")
        labels = store.read_array("cluster", "labels.npy")
        guide = store.read_array("cluster", "guide.npy")
    except (FileNotFoundError, KeyError, ValueError):
        return None
    if meta.get("settings") != hash_json(_settings(config)) or meta.get("model") != model_identity(config.embed):
        return None
    if len(pool) != len(old_ids) or len(labels) != len(old_ids):
        return None
    previous = ClusterResult(
        labels=labels,
        reduced=store.read_array("cluster", "reduced.npy"),
        layout=store.read_array("cluster", "layout.npy"),
        params=meta["params"],
        notes=meta["notes"],
    )
    return _Previous(previous, old_ids, pool.astype(bool), int(meta.get("base_papers", len(old_ids))), guide)


def _joinable(config: RunConfig, last: _Previous | None, paper_ids: list[str], forced: bool) -> bool:
    """The papers added since ``last`` may simply join it: updates are on, not forced, and it only grew."""
    if last is None or forced or not config.cluster.incremental:
        return False
    return set(last.paper_ids) <= set(paper_ids) and len(paper_ids) > len(last.paper_ids)


def _guide(last: _Previous | None, paper_ids: list[str]) -> np.ndarray | None:
    """Each paper's cluster in the last clustering (-1: none, or not in it), to guide a recluster.

    When the last clustering was a full one of exactly these papers, its own guide (None when
    it had none): the recluster then reproduces it instead of drifting from it run after run.
    """
    if last is None:
        return None
    if last.paper_ids == paper_ids and last.base_papers == len(paper_ids):
        return last.guide if len(last.guide) else None
    topic_of = dict(zip(last.paper_ids, last.result.labels.tolist(), strict=True))
    return np.array([topic_of.get(paper_id, -1) for paper_id in paper_ids], dtype=np.int64)


def _updated(config: RunConfig, embeddings: np.ndarray, paper_ids: list[str], found: _Previous) -> Update | None:
    """The previous clustering with the new papers placed, or None when it drifted past the bar."""
    from pipeline.feed.update import drifted, update_clusters

    row_of = {paper_id: row for row, paper_id in enumerate(paper_ids)}
    old_rows = np.array([row_of[paper_id] for paper_id in found.paper_ids])
    update = update_clusters(
        found.result, found.pool, embeddings, old_rows, config.label.outlier_percentile, found.base_papers
    )
    reason = drifted(update, found.base_papers, config.cluster.incremental_max_share, config.cluster.update_drift)
    if reason is not None:
        log.info("cluster: reclustering everything: %s", reason)
        return None
    return update


def run(context: StageContext) -> StageResult:
    from pipeline.embed import model_identity
    from pipeline.parallel import release_joblib_workers
    from pipeline.sample_fit import fit_on_sample

    config = context.config
    embeddings = context.store.read_array("embed", "embeddings.npy")
    paper_ids = context.store.read_table("parse", "papers.parquet")["paper_id"].tolist()
    last = _last_clustering(context)
    found = last if _joinable(config, last, paper_ids, context.forced) else None
    update = None if found is None else _updated(config, embeddings, paper_ids, found)
    if update is None:
        # A recluster of this run keeps what still holds of its topics (config.cluster.recluster_guide).
        guide = _guide(last, paper_ids)
        try:
            result = fit_on_sample(
                embeddings, config.cluster, config.seed, context.engine, config.label.outlier_percentile, guide=guide
            )
        finally:
            release_joblib_workers()  # idle, they would keep their memory through the later stages
        pool, base_papers = np.zeros(len(paper_ids), dtype=bool), len(paper_ids)
        used = np.zeros(0, dtype=np.int64) if guide is None else guide
    else:
        assert found is not None
        result, pool, base_papers = update.result, update.pool, found.base_papers
        used = np.zeros(0, dtype=np.int64)  # only a full clustering is repeated with its guide
    for note in result.notes:
        log.info("cluster: %s", note)
    n_clusters = len(set(result.labels.tolist()) - {-1})
    counts = {"papers": len(result.labels), "clusters": n_clusters, "outliers": int((result.labels < 0).sum())}
    if update is not None and found is not None:
        counts["incremental"] = len(paper_ids) - len(found.paper_ids)
        counts["pool"] = int(pool.sum())
    meta = {
        "params": result.params,
        "notes": result.notes,
        "settings": hash_json(_settings(config)),
        "model": model_identity(config.embed),
        "base_papers": base_papers,
    }
    ids_table = pd.DataFrame({"paper_id": pd.Series(paper_ids, dtype="string")})
    outputs = {
        "labels.npy": array_to_bytes(result.labels),
        "reduced.npy": array_to_bytes(result.reduced),
        "layout.npy": array_to_bytes(result.layout),
        "paper_ids.parquet": table_to_bytes(ids_table),
        "cluster.json": json_to_bytes(meta),
        "pool.npy": array_to_bytes(pool),
        "guide.npy": array_to_bytes(used),
    }
    return outputs, counts


STAGE = Stage(
    name="cluster",
    code_version=9,
    inputs=(("embed", "embeddings.npy"), ("parse", "papers.parquet")),
    outputs=("labels.npy", "reduced.npy", "layout.npy", "paper_ids.parquet", "cluster.json", "pool.npy", "guide.npy"),
    config_slice=_settings,
    run=run,
    modules=(
        "pipeline.stages.cluster",
        "pipeline.cluster",
        "pipeline.parallel",
        "pipeline.feed.update",
        "pipeline.sample_fit",
        "pipeline.exact",
    ),
    uses_engine=True,
)
