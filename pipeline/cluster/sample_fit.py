"""Fit the clusters on a sample, then give every other paper its topic and map position.

UMAP and HDBSCAN grow faster than the number of papers and run on one core each; every
mature stack fits them on one node and parallelises only the assignment (cuML's distributed
UMAP, spark-rapids-ml's ``sample_fraction``, BERTopic's advice for 10M documents). Here:

1. :func:`fit_sample_size` says how many papers the fit sees (``cluster.fit_sample``):
   all of them up to ``AUTO_FIT_SAMPLE``, a fixed number above it;
2. :func:`choose_sample` picks them: a seeded uniform random sample, in corpus order; for
   ``cluster.method: leiden``, :func:`keyed_sample`: the papers whose ids hash lowest, the same
   papers for any seed and in any order, so its topics do not hinge on the seed through the sample;
3. ``pipeline.cluster.fit.cluster_papers`` fits UMAP + HDBSCAN on the sample (the caller does it),
   with the cluster settings as they are: min_cluster_size "auto" is the sample's own (47 for
   20,000 papers). Scaled from the whole corpus's instead (24 = 91 x 20,000 / 74,728: a topic
   needs the same share of the papers) it found 90 topics, not 42, but NMI fell from 0.180 to
   0.170 and the outliers rose from 7.2% to 9.5% against the full fit's 0.179 and 6.7%
   (74,728 arXiv CS papers, preview vectors, bench/sample_fit.py);
4. :func:`assign_rest` places every other paper from its nearest sample papers in embedding
   space, not with ``UMAP.transform`` (which costs nearly a fit). It is a pure function of
   the sample and a block of papers, so it runs per partition on workers
   (``pipeline.engine``), and in blocks (``pipeline.cluster.neighbours.BLOCK_ELEMENTS``) so that memory stays bounded.
   Its neighbours are looked for among at most ``ASSIGN_REFERENCE`` sample papers (a seeded
   sample of the sample), so its cost per paper does not grow with the sample: one
   matrix product per block and an exact top k (``pipeline.cluster.neighbours.nearest_exact``), no loop per paper.

How a paper is placed, with S = its ``k`` nearest reference papers by cosine:

- topic: the similarity-weighted majority of S's cluster labels, the outlier label (-1)
  counting as one more candidate, as in ``pipeline.cluster.update.extend_clusters``: a paper among HDBSCAN's
  outliers is an outlier, as HDBSCAN would have made it. A paper less typical of the topic
  it was voted into than every sample member of it (a lower cosine to the topic's centroid
  than the least typical one) is an outlier too: far from everything, its few nearest
  papers' majority says nothing;
- with ``outlier_percentile`` set (``label.reduce_outliers``): an outlier joins its nearest
  topic centroid when it is at least as close to it as that topic's own ``outlier_percentile``%
  least typical sample papers: the bar of ``pipeline.label.reassign_outliers``, set by the
  sample's members of each topic;
- position (any coordinates of the sample: the 2-D map, the reduced vectors, or both side by
  side): the similarity-weighted mean of the positions of those papers of S that share its
  topic (all of S when none does, or for an outlier), so that a paper lands inside its topic's
  island on the map, not between two islands.

Equal similarities are broken by the lower sample row, and every similarity and weighted mean
is computed exactly or in a fixed order (``pipeline.cluster.neighbours``), so a paper's topic and position
depend on its own vector alone, bit for bit, never on the block or part it was placed in nor
on the CPU's BLAS kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from pipeline.cluster.fit import ClusterResult, cluster_papers
from pipeline.cluster.keyed import keyed_sample
from pipeline.cluster.neighbours import BLOCK_ELEMENTS, grid_dot, nearest_exact, on_grid, weighted_mean
from pipeline.config import DEFAULT_N_NEIGHBORS, ClusterConfig

if TYPE_CHECKING:
    from pipeline.engine import Engine

OUTLIER = -1
# Up to this many papers the clusters are fitted on all of them ("auto"): every corpus measured
# so far keeps today's topics, and the full fit is still cheap (85 s for 74,428 papers on an
# idle 2-core machine, docs/benchmarks.md; about 2 minutes at 100,000). bench/sample_fit.py on those papers
# (preview vectors, a busy machine): a fit on a 20,000 sample plus the assignment scores the
# full fit's NMI (0.180 vs 0.179) with 0.5 points more outliers after the label stage, in
# about a third of the time (64 vs 184 CPU seconds; half of its wall time is the assignment, which
# workers share); above 100,000 papers UMAP's and HDBSCAN's time and memory
# keep growing, the sample's fit does not (the assignment grows linearly, in parallel).
AUTO_FIT_SAMPLE = 100_000
# The same for ``cluster.method: leiden``, whose consensus grows faster than the papers: on the whole
# 74,728 arXiv CS papers (preview vectors) 50 members x 4 rounds took 1,309 CPU seconds, and the exact
# 15-NN graph, its edges and the 2-D map 120 more, against 167 for the default method's whole stage
# (bench/cluster_cost.py). Fewer passes or members do not reach 1.5x that: one first-round partition
# took 23.3 CPU s with n_iterations -1 and 3.5 with igraph's 2 (a loaded machine), whose 50 members
# alone exceed the budget, and two single partitions agreed at an ARI of only 0.63 (0.59 with 2).
# A sample of 15,000 drawn by the papers' ids costs 134 CPU s (0.79x the default's 171 in the same run),
# 31-32 topics, NMI 0.184 (0.151), NPMI 0.137 (0.173), 1.4% outliers (63.6%), but the seeds 1-3 agree at an
# ARI of only 0.835 (lowest pair 0.799) and 0.826 under noise 1e-4: below the 0.9 / 0.95 aimed at
# (bench/stability.py, 2026-12-07, load 9-25 on 2 cores). The loss is the consensus's, not the assignment's:
# on the sample alone seeds 1 and 2 agreed at 0.852 (0.842 at resolution 1). With the "auto" members and
# resolution of a 15,000-paper fit (100, 1.5: pipeline.cluster.consensus.AUTO_SETTINGS) the seeds 1-3 agreed
# at 0.913 (lowest pair 0.900), 0.924 under noise, 22-23 topics, NMI 0.196, NPMI 0.129, 0.9% outliers, for
# 230.6 CPU s against the default's 160.9 in the same run (1.43x; load 1-7). Up to it, a full fit as before.
LEIDEN_FIT_SAMPLE = 15_000
# With it, the assignment's reference sample of the sample (over ``ASSIGN_REFERENCE`` papers) is drawn with this
# seed, not the run's: the topics of the other papers hinge on no seed either.
LEIDEN_REFERENCE_SEED = 0
# The papers outside the sample look for their neighbours among at most this many sample
# papers (a seeded sample of the sample): the assignment's cost grows with the reference, and
# 20,000 is what bench/sample_fit.py measured on 74,728 papers (NMI 0.180 vs the full fit's
# 0.179). Against the 100,000 of an "auto" sample the assignment would take 5x longer
# (bench/assign_speed.py).
ASSIGN_REFERENCE = 20_000
FitSample = int | Literal["auto", "all"]


def fit_sample_size(n_papers: int, setting: FitSample, method: str = "umap-hdbscan") -> int:
    """How many of ``n_papers`` the clusters are fitted on.

    ``setting``: "auto" = all papers up to ``AUTO_FIT_SAMPLE`` (``LEIDEN_FIT_SAMPLE`` for
    ``method`` "leiden"), that many above it; "all" = every paper; a number = that many (all
    papers when there are fewer).
    """
    if n_papers < 0:
        raise ValueError(f"n_papers must not be negative, not {n_papers}")
    if setting == "all":
        return n_papers
    if setting == "auto":
        return min(n_papers, LEIDEN_FIT_SAMPLE if method == "leiden" else AUTO_FIT_SAMPLE)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"fit_sample must be 'auto', 'all' or a positive number of papers, not {setting!r}")
    return min(n_papers, setting)


def choose_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Row numbers of a seeded uniform random sample of ``size`` of ``n`` papers, ascending.

    Returns ndarray of shape (min(size, n),) int64; every row when ``size >= n``. The same
    ``n``, ``size`` and ``seed`` always give the same rows (numpy's PCG64 generator).
    """
    if size < 0:
        raise ValueError(f"size must not be negative, not {size}")
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rows = np.random.default_rng(seed).choice(n, size=size, replace=False)
    return np.sort(rows).astype(np.int64)


def fit_rows(
    embeddings: np.ndarray, size: int, keyed: bool, seed: int, keys: Sequence[str] | None = None
) -> np.ndarray:
    """The sample's rows: :func:`keyed_sample` of ``keys`` (None: the vectors' bytes) when ``keyed``, else seeded."""
    if not keyed:
        return choose_sample(embeddings.shape[0], size, seed)
    return keyed_sample([row.tobytes() for row in embeddings] if keys is None else keys, size)


def rest_of(n: int, sample: np.ndarray) -> np.ndarray:
    """Row numbers of the papers outside ``sample``, ascending: ndarray of shape (n - len(sample),) int64."""
    outside = np.ones(n, dtype=bool)
    outside[sample] = False
    return np.flatnonzero(outside).astype(np.int64)


@dataclass(frozen=True)
class TopicBars:
    """Each topic's unit centroid, least typical member and outlier bar, from the sample's members.

    ids: (n_topics,) int64; centroids: (n_topics, dim) float32; floors: (n_topics,) float64,
    the lowest member cosine to the centroid; bars: (n_topics,) float64, the
    ``outlier_percentile``-th percentile of those cosines.
    """

    ids: np.ndarray
    centroids: np.ndarray
    floors: np.ndarray
    bars: np.ndarray


def topic_bars(sample_embeddings: np.ndarray, sample_labels: np.ndarray, outlier_percentile: float) -> TopicBars:
    """Centroid, floor and bar per topic; centroid and bar as ``pipeline.label.reassign_outliers`` sets them.

    sample_embeddings: (n_sample, dim), unit rows; sample_labels: (n_sample,), -1 = outlier.
    """
    ids = np.array(sorted(set(sample_labels.tolist()) - {OUTLIER}), dtype=np.int64)
    dim = sample_embeddings.shape[1]
    centroids = np.zeros((len(ids), dim), dtype=np.float32)
    floors = np.zeros(len(ids), dtype=np.float64)
    bars = np.zeros(len(ids), dtype=np.float64)
    for index, topic in enumerate(ids.tolist()):
        members = on_grid(sample_embeddings[sample_labels == topic])
        mean = on_grid(members.mean(axis=0)[None, :])  # an exact sum: grid values, whatever the order
        norm = float(np.sqrt(grid_dot(mean, mean.T)[0, 0]))
        centroids[index] = mean[0] / norm if norm > 0 else mean[0]
        # The members' cosines as the papers to place get theirs (exact products on the grid).
        cosines = grid_dot(members, on_grid(centroids[index][:, None]))[:, 0]
        floors[index] = cosines.min()
        bars[index] = np.percentile(cosines, outlier_percentile)
    return TopicBars(ids, centroids, floors, bars)


def assign_rest(
    sample_embeddings: np.ndarray,
    sample_labels: np.ndarray,
    sample_layout: np.ndarray,
    rest_embeddings: np.ndarray,
    k: int,
    outlier_percentile: float | None,
    block_rows: int | None = None,
    reference: int = ASSIGN_REFERENCE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Topic and position of each paper outside the sample, from its ``k`` nearest reference papers.

    Args:
        sample_embeddings: ndarray of shape (n_sample, dim), unit rows, the papers the clusters were fitted on.
        sample_labels: ndarray of shape (n_sample,) int, their clusters, -1 = outlier.
        sample_layout: ndarray of shape (n_sample, d): their coordinates (2-D map, reduced vectors, or both).
        rest_embeddings: ndarray of shape (n_rest, dim), unit rows, the papers to place.
        k: reference neighbours consulted per paper (the cluster stage's n_neighbors).
        outlier_percentile: an outlier joins its nearest topic when at least as close to its
            centroid as the topic's own ``outlier_percentile``% least typical sample papers;
            None keeps every outlier the neighbours vote for.
        block_rows: papers compared with the reference at once (bounds memory; no effect on the result);
            None = as many as ``BLOCK_ELEMENTS`` similarities allow.
        reference: the neighbours are looked for among at most this many sample papers, a seeded
            sample of the sample (:func:`choose_sample` with ``seed``); the topics' centroids, floors
            and bars come from the whole sample all the same.
        seed: seeds the reference sample.

    Returns:
        labels ndarray of shape (n_rest,) int64 and positions ndarray of shape (n_rest, d) float32.
    """
    n_sample = sample_embeddings.shape[0]
    if n_sample == 0:
        raise ValueError("the sample is empty: there is nothing to assign papers to")
    if sample_labels.shape != (n_sample,) or sample_layout.shape[0] != n_sample:
        raise ValueError(
            f"{n_sample} sample embeddings but labels of shape {sample_labels.shape} "
            f"and a layout of shape {sample_layout.shape}"
        )
    if rest_embeddings.shape[1:] != sample_embeddings.shape[1:]:
        raise ValueError(
            f"rest vectors of shape {rest_embeddings.shape} beside sample vectors of {sample_embeddings.shape}"
        )
    if isinstance(reference, bool) or not isinstance(reference, int) or reference < 1:
        raise ValueError(f"reference must be a positive number of papers, not {reference!r}")
    sample_labels = np.asarray(sample_labels, dtype=np.int64)
    bars = topic_bars(sample_embeddings, sample_labels, 0.0 if outlier_percentile is None else outlier_percentile)
    rows = choose_sample(n_sample, reference, seed)
    n_reference = len(rows)
    k = max(1, min(k, n_reference))
    if block_rows is None:
        block_rows = max(1, BLOCK_ELEMENTS // n_reference)
    reference_labels = sample_labels[rows]
    # Candidate topics as columns, the outlier label first: on an exact tie the outlier wins.
    candidates, label_columns = np.unique(np.concatenate([[OUTLIER], reference_labels]), return_inverse=True)
    label_columns = label_columns[1:]
    n_rest, dims = rest_embeddings.shape[0], sample_layout.shape[1]
    labels = np.empty(n_rest, dtype=np.int64)
    positions = np.empty((n_rest, dims), dtype=np.float32)
    reference_rows = np.ascontiguousarray(sample_embeddings[rows], dtype=np.float32)
    reference_grid, reference_t = on_grid(reference_rows), np.ascontiguousarray(reference_rows.T)
    centroids_t = on_grid(bars.centroids).T
    layout = np.asarray(sample_layout, dtype=np.float64)[rows]
    for start in range(0, n_rest, block_rows):
        block = np.ascontiguousarray(rest_embeddings[start : start + block_rows], dtype=np.float32)
        block_grid = on_grid(block)
        nearest, similarity = nearest_exact(block, reference_t, block_grid, reference_grid, k)  # (b, k) each
        labels[start : start + len(block)], positions[start : start + len(block)] = _assign_block(
            nearest, similarity, grid_dot(block_grid, centroids_t), label_columns, candidates, layout, bars,
            reassign=outlier_percentile is not None,
        )  # fmt: skip
    return labels, positions


def _assign_block(
    nearest: np.ndarray,
    similarity: np.ndarray,
    to_centroids: np.ndarray,
    label_columns: np.ndarray,
    candidates: np.ndarray,
    layout: np.ndarray,
    bars: TopicBars,
    reassign: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Topics and positions of a block from its papers' nearest reference papers (b, k) and cosines to the topics."""
    weights = np.clip(similarity, 1e-6, None).astype(np.float64)
    columns = label_columns[nearest]  # (b, k)
    n_candidates, b = len(candidates), len(nearest)
    flat = (np.arange(b)[:, None] * n_candidates + columns).ravel()
    votes = np.bincount(flat, weights=weights.ravel(), minlength=b * n_candidates)
    labels = candidates[votes.reshape(b, n_candidates).argmax(axis=1)]
    if len(bars.ids):
        voted = np.flatnonzero(labels != OUTLIER)
        column = np.searchsorted(bars.ids, labels[voted])
        beyond = to_centroids[voted, column] < bars.floors[column]
        labels[voted[beyond]] = OUTLIER
        if reassign:
            outliers = np.flatnonzero(labels == OUTLIER)
            best = to_centroids[outliers].argmax(axis=1)
            accepted = to_centroids[outliers, best] >= bars.bars[best]
            labels[outliers[accepted]] = bars.ids[best[accepted]]
    same_topic = (candidates[columns] == labels[:, None]) & (labels[:, None] != OUTLIER)
    use = np.where(same_topic.any(axis=1, keepdims=True), same_topic, True)
    positions = weighted_mean(weights * use, layout[nearest])
    return labels, positions.astype(np.float32)


# How long one part of the assignment may take on a worker before the run stops with an error.
ASSIGN_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class MappedRows:
    """Rows of a .npy file a worker reads itself (memory-mapped): a part of the papers sent by reference.

    When the vectors are a memory map of the embed stage's file, the driver sends each part's
    rows, not its vectors: at a million papers it held 0.9 GB of copies besides the 1 GB file.
    The workers need the file at ``path`` (a shared file system for a remote cluster, as parse).
    """

    path: str
    rows: np.ndarray

    def load(self) -> np.ndarray:
        return np.asarray(np.load(self.path, mmap_mode="r")[self.rows])


def _part_vectors(embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray | MappedRows:
    """The vectors of ``rows``, or, from a memory map of a .npy file, the rows for a worker to read there."""
    if isinstance(embeddings, np.memmap) and embeddings.filename is not None:
        return MappedRows(str(embeddings.filename), rows)
    return embeddings[rows]


def _assign_part(
    part: np.ndarray | MappedRows,
    *,
    sample_embeddings: np.ndarray,
    sample_labels: np.ndarray,
    sample_coords: np.ndarray,
    k: int,
    outlier_percentile: float | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Place one part of the papers outside the sample: its vectors, ndarray of shape (n_part, dim), or its rows."""
    vectors = part.load() if isinstance(part, MappedRows) else part
    return assign_rest(sample_embeddings, sample_labels, sample_coords, vectors, k, outlier_percentile, seed=seed)


def fit_on_sample(
    embeddings: np.ndarray,
    config: ClusterConfig,
    seed: int,
    engine: Engine,
    outlier_percentile: float | None,
    guide: np.ndarray | None = None,
    keys: Sequence[str] | None = None,
) -> ClusterResult:
    """Clusters and layouts of every paper, fitted on ``cluster.fit_sample`` of them.

    ``guide``: (n_papers,) the topics of the clustering before, -1 = none (see
    :func:`pipeline.cluster.fit.cluster_papers`); the fit on a sample is guided by the sample's.
    ``keys``: each paper's id (the cluster stage's ``paper_id``), which draws the sample of
    ``cluster.method: leiden`` (:func:`keyed_sample`); None = each vector's bytes (then a change
    in the vectors draws another sample).

    With a sample that covers every paper this is :func:`pipeline.cluster.fit.cluster_papers` itself,
    so small and medium piles get exactly today's result. Above it, UMAP and HDBSCAN fit on a
    seeded sample here, and the other papers are placed by :func:`assign_rest` in parts spread
    over ``engine``'s workers. embeddings: ndarray of shape (n_papers, dim), unit rows; a memory map of
    a .npy file (``np.load(mmap_mode="r")``) is read here only for the sample, and each worker reads
    its part's rows from the file (:class:`MappedRows`).
    """
    n_papers = embeddings.shape[0]
    size = fit_sample_size(n_papers, config.fit_sample, config.method)
    if size >= n_papers:
        whole = np.array(embeddings) if isinstance(embeddings, np.memmap) else embeddings  # a memory map read whole
        return cluster_papers(whole, config, seed, guide=guide)
    keyed = config.method == "leiden"
    sample = fit_rows(embeddings, size, keyed, seed, keys)
    rest = rest_of(n_papers, sample)
    sample_embeddings = np.asarray(embeddings[sample])  # a copy in memory, a memory map's too
    fitted = cluster_papers(sample_embeddings, config, seed, guide=None if guide is None else guide[sample])
    width = fitted.layout.shape[1]
    coords = np.hstack([fitted.layout, fitted.reduced]).astype(np.float32)
    parts = [part for part in np.array_split(rest, max(1, engine.n_workers * 4)) if len(part)]
    # Each part travels with its own vectors (or rows) only: no worker holds the whole corpus's.
    placed = engine.map(
        _assign_part,
        [_part_vectors(embeddings, part) for part in parts],
        timeout_s=ASSIGN_TIMEOUT_S,
        common={
            "sample_embeddings": sample_embeddings,
            "sample_labels": fitted.labels,
            "sample_coords": coords,
            "k": int(fitted.params.get("n_neighbors", DEFAULT_N_NEIGHBORS)),
            "outlier_percentile": outlier_percentile,
            "seed": LEIDEN_REFERENCE_SEED if keyed else seed,
        },
    )
    labels = np.empty(n_papers, dtype=np.int64)
    positions = np.empty((n_papers, coords.shape[1]), dtype=np.float32)
    labels[sample], positions[sample] = fitted.labels, coords
    for part, (part_labels, part_coords) in zip(parts, placed, strict=True):
        labels[part], positions[part] = part_labels, part_coords
    note = (
        f"fitted on a {'keyed' if keyed else 'seeded'} sample of {size:,} of {n_papers:,} papers "
        f"(cluster.fit_sample); the other "
        f"{len(rest):,} joined through their nearest sample papers on {engine.n_workers} worker(s)"
    )
    params = {**fitted.params, "fit_sample": size}
    return ClusterResult(labels, positions[:, width:], positions[:, :width], params, [*fitted.notes, note])
