"""Updating a clustering when papers are added, instead of reclustering everything.

The papers clustered before keep their clusters and map positions. Each new paper joins
its nearest cluster (cosine to the centroid) when it is at least as close as the
cluster's own ``percentile``% least typical papers: the bar ``reassign_outliers`` sets for
outliers (``pipeline.label.geometry.centroid_bars``). A new paper that fits no cluster goes
to the *pool*, which lasts across updates until the next full clustering. HDBSCAN on the
pool among an even sample of the clustered papers (as many as the pool, at least
``BACKGROUND_MIN``; embeddings reduced by PCA to ``POOL_DIMENSIONS``; the run's
min_cluster_size and min_samples) turns each dense group made mostly of pool papers, with
at least min_cluster_size of them, into a new cluster; the rest stay outliers in the pool.
The pool is clustered only by an update that added papers to it: an unchanged pool keeps the
verdict of the update that last changed it, so a rerun with no new papers changes nothing.
New papers are placed on the map (and in the reduced space) at the similarity-weighted mean
of their nearest old papers (``pipeline.cluster.update.extend_clusters``).

The recluster rule (:func:`drifted`): the clustering was learnt on the papers of the last full
clustering (the base); everything is reclustered when either
- the papers added since then exceed ``max_growth`` times the base (0.25 by default: a quarter
  more) and number at least ``min_growth`` (1,000 by default: a small feed of 600 papers that
  grows by 20 a day is reclustered after 50 days, not after 8), or
- the new papers drifted away from the clusters: at least min_cluster_size papers were added,
  the share of them left in the pool exceeds by more than ``max_drift`` the share of the
  clustered papers that miss the same bar (the pool share the clustering itself would give its
  own papers), and more than ``max_drift`` of them (and at least min_cluster_size) sit in dense
  groups of the pool that could not become topics of their own because clustered papers share
  them (``Update.unborn``): new papers crowd the edge of a topic, which only a recluster can
  redraw. Pool papers that form no dense group are outliers that wait; a dense group made
  mostly of pool papers is born as a topic here, without a recluster.
On small feeds (Daily Papers pages, ~30 papers a day) a day's papers often start a subject of
their own: under the share test alone that reclustered nearly every day and moved 5% of the
placed papers' ids; they now wait in the pool until they are dense enough to be a topic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.cluster.fit import ClusterResult, hdbscan_labels
from pipeline.cluster.update import extend_clusters
from pipeline.config import DEFAULT_N_NEIGHBORS
from pipeline.label.geometry import centroid_bars

POOL_DIMENSIONS = 16
UPDATE_NOTE = "incremental update"  # how an update's note starts
# At least this many clustered papers (else as many as the pool holds) surround the pool when it is clustered.
BACKGROUND_MIN = 500


@dataclass(frozen=True)
class Update:
    """A clustering with new papers placed; pool: bool (n_papers,) papers that fit no cluster."""

    result: ClusterResult
    pool: np.ndarray
    joined: int  # new papers that joined an existing cluster
    born: int  # clusters made from the pool
    pool_share: float  # share of the papers added since the base left in the pool
    base_miss_share: float  # share of the clustered papers below the bar of their nearest cluster
    # Pool papers in dense groups that could not become a topic (clustered papers share them); 0 when no
    # paper entered the pool (it is not clustered again).
    unborn: int = 0


def _pca(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return (centred @ components[:dimensions].T).astype(np.float64)


def update_clusters(
    previous: ClusterResult,
    previous_pool: np.ndarray,
    embeddings: np.ndarray,
    old_rows: np.ndarray,
    percentile: float,
    base_papers: int,
) -> Update:
    """``previous`` (the papers at ``old_rows``, in that order) with every other paper of ``embeddings`` placed.

    previous_pool: bool (len(old_rows),) the pool after the last update; base_papers: how
    many papers the last full clustering held. Rows of the result follow ``embeddings``.
    """
    n_papers = embeddings.shape[0]
    new_rows = np.setdiff1d(np.arange(n_papers), old_rows)
    old_embeddings = embeddings[old_rows]
    labels = np.full(n_papers, -1, dtype=np.int64)
    labels[old_rows] = previous.labels
    cluster_ids = sorted(set(previous.labels.tolist()) - {-1})
    centroids, bars = centroid_bars(previous.labels, old_embeddings, cluster_ids, percentile)
    similarity = embeddings[new_rows] @ centroids.T
    nearest = similarity.argmax(axis=1)
    fits = similarity[np.arange(len(new_rows)), nearest] >= bars[nearest]
    labels[new_rows[fits]] = np.asarray(cluster_ids)[nearest[fits]]
    clustered = old_rows[(previous.labels >= 0) & ~previous_pool]
    old_similarity = embeddings[clustered] @ centroids.T
    old_nearest = old_similarity.argmax(axis=1)
    base_miss = float(np.mean(old_similarity[np.arange(len(clustered)), old_nearest] < bars[old_nearest]))

    pool = np.zeros(n_papers, dtype=bool)
    pool[old_rows] = previous_pool
    pool[new_rows[~fits]] = True
    min_cluster_size = int(previous.params.get("min_cluster_size", 2))
    min_samples = previous.params.get("min_samples")
    born, unborn = 0, 0
    pool_rows = np.flatnonzero(pool)
    # Only papers that entered the pool can make a new group of it. An unchanged pool was judged
    # by the update that last added to it; judged again among the papers that joined since (another
    # sample of the clustered papers), the same papers could become a topic on a rerun with nothing new.
    if (~fits).any() and len(pool_rows) >= min_cluster_size:
        # The pool is clustered among a sample of clustered papers, so that density is judged
        # against the corpus (HDBSCAN alone on a pool of one dense group finds nothing).
        background = clustered[:: max(1, len(clustered) // max(BACKGROUND_MIN, len(pool_rows)))]
        rows = np.concatenate([pool_rows, background])
        dimensions = min(POOL_DIMENSIONS, len(rows) - 1)
        found_all = hdbscan_labels(_pca(embeddings[rows], dimensions), min_cluster_size, min_samples)
        found = found_all[: len(pool_rows)]
        next_label = max(cluster_ids, default=-1) + 1
        for cluster in sorted(set(found.tolist()) - {-1}):
            members = pool_rows[found == cluster]
            if len(members) < min_cluster_size or 2 * len(members) <= int((found_all == cluster).sum()):
                unborn += len(members)
                continue
            labels[members] = next_label + born
            pool[members] = False
            born += 1

    n_neighbors = int(previous.params.get("n_neighbors", DEFAULT_N_NEIGHBORS))
    _, new_reduced, new_layout = extend_clusters(previous, old_embeddings, embeddings[new_rows], n_neighbors)
    reduced = np.empty((n_papers, previous.reduced.shape[1]), dtype=np.float32)
    layout = np.empty((n_papers, 2), dtype=np.float32)
    reduced[old_rows], reduced[new_rows] = previous.reduced, new_reduced
    layout[old_rows], layout[new_rows] = previous.layout, new_layout
    added = n_papers - base_papers
    pool_share = float(pool.sum() / added) if added > 0 else 0.0
    note = (
        f"{UPDATE_NOTE}: {len(new_rows)} new papers, {int(fits.sum())} joined their nearest cluster, "
        f"{born} new cluster(s) formed in the pool, {int(pool.sum())} papers wait in the pool "
        f"(run with --force cluster to recluster everything)"
    )
    # The notes of the last full clustering and of this update (not one more line per update, run after run).
    kept_notes = [line for line in previous.notes if not line.startswith(UPDATE_NOTE)]
    result = ClusterResult(labels, reduced, layout, previous.params, [*kept_notes, note])
    return Update(result, pool, int(fits.sum()), born, round(pool_share, 6), round(base_miss, 6), unborn)


def drifted(update: Update, base_papers: int, max_growth: float, max_drift: float, min_growth: int) -> str | None:
    """Why the updated clustering should be redone from scratch, or None (see the module docstring)."""
    n_papers = len(update.pool)
    added = n_papers - base_papers
    min_cluster_size = int(update.result.params.get("min_cluster_size", 2))
    if added > max_growth * base_papers and added >= min_growth:
        return (
            f"growth: {added} papers added since the last full clustering of {base_papers} "
            f"(over {max_growth:g}x and at least {min_growth:,})"
        )
    drifting = added >= min_cluster_size and update.pool_share - update.base_miss_share > max_drift
    if drifting and update.unborn >= min_cluster_size and update.unborn > max_drift * added:
        return (
            f"drift: {update.pool_share:.0%} of the {added} papers added since the last full clustering fit no "
            f"topic, against {update.base_miss_share:.0%} of the clustered papers (drift bar {max_drift:.0%}), "
            f"and {update.unborn} of them sit in dense groups that clustered papers share"
        )
    return None
