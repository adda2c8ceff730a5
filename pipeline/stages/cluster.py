"""Cluster stage: the vectors in, topic labels, the reduced vectors and the 2-D map out.

When the last clustering was made with the same settings and model and every paper of it
is still there with the same text (read from any file: a renamed file changes nothing), the
new papers join it (``pipeline.feed.update``: nearest centroid under the outlier bar, dense
groups of the papers that fit nowhere become new clusters) instead of a full recluster,
until the recluster rule there asks for one (growth, drift) or ``--force cluster`` is given.
Every full clustering says why, in the log and in ``cluster.json`` ("recluster"), which the
report shows on ``new.html``.

A full recluster of a run clustered before with the same settings and model is guided by
that clustering (semi-supervised UMAP, ``cluster.recluster_guide``): topics that still hold
come back with the same members, so the label stage keeps their ids. A first run, or one
with other settings, is never guided: tuning a setting gives what a fresh run gives. A
recluster of exactly the papers of a full clustering repeats that clustering's own guide
(none for a first run), so the same config on the same inputs gives the same topics.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.cluster.fit import ClusterResult
from pipeline.config import RunConfig
from pipeline.errors import StateDamagedError
from pipeline.files import array_to_bytes, hash_json, json_to_bytes, table_to_bytes
from pipeline.schema import TEXT_COLUMNS
from pipeline.stage import Stage, StageContext, StageResult

if TYPE_CHECKING:
    from pipeline.feed.update import Update

log = logging.getLogger(__name__)


# When to recluster instead of placing new papers (pipeline.feed.update); they shape no clustering.
RULE_KEYS = ("incremental", "incremental_max_share", "incremental_min_growth", "update_drift")


def _settings(config: RunConfig) -> dict[str, Any]:
    # New papers join a cluster under the label stage's outlier bar (pipeline.feed.update).
    return {"seed": config.seed, **config.cluster.model_dump(), "outlier_percentile": config.label.outlier_percentile}


def _clustering_settings(config: RunConfig) -> str:
    """The hash of the settings a clustering is made with: one made under others is not updated.

    The recluster rule's keys are left out: tuning when to recluster redoes no clustering.
    """
    settings = _settings(config)
    return hash_json({key: value for key, value in settings.items() if key not in RULE_KEYS})


@dataclass(frozen=True)
class _Previous:
    result: ClusterResult
    paper_ids: list[str]
    pool: np.ndarray  # bool per old paper: fit no cluster since the last full clustering
    base_papers: int  # papers of the last full clustering
    guide: np.ndarray  # the guide the last clustering was made with, when a full one (empty: none)
    texts: str  # the key of its papers' texts (_texts_key), "" when it recorded none


def _last_clustering(context: StageContext) -> _Previous | None:
    """The clustering the last successful run carried, when made with the same settings and model.

    Read from the run's history (``context.state``), whose files were checked against their
    recorded hashes when the run started: never from this stage's folder, which a failed run
    may have invalidated or rewritten.
    """
    from pipeline.embed import model_identity

    config, state = context.config, context.state
    if state is None or not state.holds("cluster", CARRIED):
        return None
    meta = state.read_json("cluster", "cluster.json")
    old_ids = state.read_table("cluster", "paper_ids.parquet")["paper_id"].tolist()
    pool = state.read_array("cluster", "pool.npy")
    labels = state.read_array("cluster", "labels.npy")
    guide = state.read_array("cluster", "guide.npy")
    if meta.get("settings") != _clustering_settings(config) or meta.get("model") != model_identity(config.embed):
        return None
    if len(pool) != len(old_ids) or len(labels) != len(old_ids):
        raise StateDamagedError(
            f"the run history's clustering holds {len(old_ids)} papers but {len(labels)} labels and "
            f"{len(pool)} pool flags (generation {state.generation.number})"
        )
    previous = ClusterResult(
        labels=labels,
        reduced=state.read_array("cluster", "reduced.npy"),
        layout=state.read_array("cluster", "layout.npy"),
        params=meta["params"],
        notes=meta["notes"],
    )
    base_papers = int(meta.get("base_papers", len(old_ids)))
    return _Previous(previous, old_ids, pool.astype(bool), base_papers, guide, str(meta.get("texts", "")))


# Papers whose texts are made at once for the texts key (all at once they would hold ~1 GB at 1M papers).
TEXTS_KEY_BLOCK = 10_000


def _texts_key(blocks: Iterable[pd.DataFrame]) -> str:
    """The content of the papers (their texts, in order), not where they were read from: a renamed file keeps it.

    ``blocks``: the papers' title and abstract columns, a block of papers at a time, in order.
    """
    from pipeline.memo import text_key
    from pipeline.schema import paper_texts

    digest = hashlib.sha256()
    for block in blocks:
        for text in paper_texts(block):
            digest.update(text_key(text))
    return digest.hexdigest()


def _in_blocks(papers: pd.DataFrame) -> Iterator[pd.DataFrame]:
    for start in range(0, len(papers), TEXTS_KEY_BLOCK):
        yield papers.iloc[start : start + TEXTS_KEY_BLOCK]


def _not_joinable(context: StageContext, last: _Previous | None, paper_ids: pd.Series) -> str | None:
    """Why the papers cannot simply join the last clustering (a full clustering is due), or None when they can.

    They can when updates are on, the stage is not forced, and every paper of the last
    clustering is still there with the same text: the papers may be read from other files.
    """
    if context.forced:
        return "forced (--force cluster or an earlier stage)"
    if not context.config.cluster.incremental:
        return "cluster.incremental is false"
    if last is None:
        if context.state is None:
            return "the first clustering of this run folder"
        return "the last clustering was made with other settings or another model, or its files changed"
    paper_ids = paper_ids.astype(str)
    kept = paper_ids.isin(set(last.paper_ids))
    gone = len(last.paper_ids) - int(kept.sum())
    if gone:
        return f"an input changed: {gone} of the papers clustered last time are gone"
    texts = context.store.read_table("parse", "papers.parquet", TEXT_COLUMNS)  # only here: an update's check
    old = texts.set_index(paper_ids).loc[last.paper_ids]
    if last.texts and _texts_key(_in_blocks(old)) != last.texts:
        return "an input changed: papers clustered last time have another title or abstract"
    return None


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


def _updated(
    config: RunConfig, embeddings: np.ndarray, paper_ids: list[str], found: _Previous
) -> tuple[Update, str | None]:
    """The previous clustering with the new papers placed, and why to recluster instead (None: no reason)."""
    from pipeline.feed.update import drifted, update_clusters

    row_of = {paper_id: row for row, paper_id in enumerate(paper_ids)}
    old_rows = np.array([row_of[paper_id] for paper_id in found.paper_ids])
    update = update_clusters(
        found.result, found.pool, embeddings, old_rows, config.label.outlier_percentile, found.base_papers
    )
    cluster = config.cluster
    reason = drifted(
        update, found.base_papers, cluster.incremental_max_share, cluster.update_drift, cluster.incremental_min_growth
    )
    return update, reason


def run(context: StageContext) -> StageResult:
    from pipeline.cluster.sample_fit import fit_on_sample
    from pipeline.embed import model_identity
    from pipeline.parallel import release_joblib_workers

    config = context.config
    # Mapped: a fit on a sample reads the sample's rows here, and each worker its part's (sample_fit.MappedRows).
    embeddings = context.store.read_array("embed", "embeddings.npy", mapped=True)
    ids = context.store.read_table("parse", "papers.parquet", ["paper_id"])["paper_id"]  # not the texts
    paper_ids = ids.tolist()
    last = _last_clustering(context)
    reason = _not_joinable(context, last, ids)
    found = last if reason is None else None
    update = None
    if found is not None:
        update, reason = _updated(config, np.array(embeddings), paper_ids, found)  # read whole, as before
        update = update if reason is None else None
    if update is None:
        log.info("cluster: full clustering: %s", reason)
        # A recluster of this run keeps what still holds of its topics (config.cluster.recluster_guide).
        guide = _guide(last, paper_ids)
        try:
            result = fit_on_sample(
                embeddings, config.cluster, config.seed, context.engine, config.label.outlier_percentile,
                guide=guide, keys=ids.astype(str).tolist(),
            )  # fmt: skip
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
        "settings": _clustering_settings(config),
        "model": model_identity(config.embed),
        "base_papers": base_papers,
        # Read a block at a time: the papers' texts are never all in memory here.
        "texts": _texts_key(context.store.table_batches("parse", "papers.parquet", TEXT_COLUMNS, TEXTS_KEY_BLOCK)),
        # Why this run clustered everything (None: the new papers joined the last clustering).
        "recluster": reason,
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


# Everything it writes is what the next run's update starts from.
CARRIED = ("labels.npy", "reduced.npy", "layout.npy", "paper_ids.parquet", "cluster.json", "pool.npy", "guide.npy")

STAGE = Stage(
    name="cluster",
    inputs=(("embed", "embeddings.npy"), ("parse", "papers.parquet")),
    outputs=CARRIED,
    config_slice=_settings,
    run=run,
    module=__name__,
    uses_engine=True,
    carries=CARRIED,
)
