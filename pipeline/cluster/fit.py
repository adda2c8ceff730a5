"""Cluster stage: embeddings in, cluster labels and a 2-D map layout out.

Seeded UMAP reduces the embeddings to a few dimensions for HDBSCAN; a second UMAP run
makes the 2-D map. Both reuse one nearest-neighbour graph, computed once. Seeded UMAP
optimises a layout on one core, so from ``PARALLEL_LAYOUT_MIN_PAPERS`` papers the 2-D map is
laid out in a second process while this one computes the 5-D layout and HDBSCAN: the same
arrays, in about half the time on 2 cores.

UMAP and HDBSCAN fail on tiny inputs with their defaults, so the settings adapt to the
number of papers, and every adaptation is returned as a note for the log and the report:
- fewer than ``MIN_PAPERS_TO_CLUSTER`` papers: one topic, a PCA layout, no UMAP;
- n_neighbors and n_components are capped by the number of papers;
- min_cluster_size "auto" grows with the square root of the corpus size;
- when HDBSCAN finds no dense group at all, every paper goes into one honest topic.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.cluster.consensus import (
    LEAST_NEIGHBOUR_SHARE,
    exact_neighbours,
    leiden_consensus,
    leiden_members,
    leiden_resolution,
)
from pipeline.config import DEFAULT_N_NEIGHBORS, ClusterConfig
from pipeline.parallel import built_beside

log = logging.getLogger(__name__)

# Below this many papers, density clustering has nothing to find: report one topic.
MIN_PAPERS_TO_CLUSTER = 8
# Up to this size an exact neighbour search is cheap (and the same bits on every CPU); above it
# pynndescent's approximate one is used.
EXACT_KNN_LIMIT = 4096
# Significant digits kept of UMAP's curve parameters a and b (curve_parameters): CPUs differ
# from the 9th; 6 change no layout measurably.
CURVE_DIGITS = 6
# From this size the 2-D map layout runs in a second process (pipeline/parallel.py). Starting it
# and importing UMAP there takes a few seconds: below about 20,000 papers one layout costs less.
PARALLEL_LAYOUT_MIN_PAPERS = 20_000


@dataclass(frozen=True)
class ClusterResult:
    """The clusters and layouts of one corpus.

    labels: ndarray (n_papers,) int, -1 = outlier; reduced: (n_papers, k) float32;
    layout: (n_papers, 2) float32; params: the settings actually used; notes: adaptations.
    """

    labels: np.ndarray
    reduced: np.ndarray
    layout: np.ndarray
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def auto_min_cluster_size(n_papers: int) -> int:
    """A third of the square root of the corpus size, at least 3.

    23 papers -> 3, 64 -> 3, 2,000 -> 15, 10,000 -> 33, 75,000 -> 91. Measured on the
    2,000-paper arXiv slice over three seeds: sqrt(n)/2 let HDBSCAN's excess-of-mass
    selection swing between 6 and 20 topics (NMI 0.47-0.56), sqrt(n)/3 stays at 27-39
    topics (NMI 0.57-0.59) with either embedding backend.
    """
    return max(3, round(math.sqrt(n_papers) / 3))


def auto_min_samples(min_cluster_size: int) -> int:
    """A quarter of min_cluster_size: HDBSCAN's default (equal to it) leaves many papers as outliers."""
    return max(1, min_cluster_size // 4)


CLUSTER_CAP_FLOOR = 100


def largest_cluster_allowed(n_papers: int, min_cluster_size: int, max_share: float) -> int:
    """HDBSCAN's ``max_cluster_size`` for a corpus: ``max_share`` of it (0 = no cap, HDBSCAN's convention).

    Excess-of-mass selection can keep one cluster that holds nearly everything when the dense
    groups inside it touch: on 7,701 arXiv papers embedded by the preview model it returned
    2 topics, one of 99.6% of the papers (NMI 0.002); capped at 20% it kept the 38 groups
    inside (NMI 0.27 among the clustered papers). On the other arXiv runs measured (2,000,
    7,701 and 74,428 papers, both backends) no cluster reached 18%, and the cap changed nothing.
    The cap never goes below ``CLUSTER_CAP_FLOOR`` papers: in a small pile one topic may
    rightly hold a third of it (capped at 12, the 64 seed papers' largest topic of 15 was split
    and 3 more papers left as outliers), and a collapse into one cluster is a large-corpus failure.
    """
    if max_share >= 1.0:
        return 0
    return max(int(max_share * n_papers), CLUSTER_CAP_FLOOR, min_cluster_size)


def cluster_papers(
    embeddings: np.ndarray,
    config: ClusterConfig,
    seed: int,
    parallel_layout: bool | None = None,
    guide: np.ndarray | None = None,
) -> ClusterResult:
    """Cluster ndarray of shape (n_papers, dim) into topics and lay the papers out in 2-D.

    ``parallel_layout``: compute the 2-D map in a second process (None: from
    ``PARALLEL_LAYOUT_MIN_PAPERS`` papers); the result is the same either way.
    ``guide``: (n_papers,) int, the topics an earlier clustering gave (-1 = none): both UMAP
    layouts are then semi-supervised by them with weight ``config.recluster_guide``
    (:func:`_umap`), so that a recluster keeps what still holds of the topics before it; with
    ``cluster.method: leiden`` the Leiden partitions start from them instead (``pipeline.cluster.consensus``).
    """
    n_papers = embeddings.shape[0]
    if n_papers < MIN_PAPERS_TO_CLUSTER:
        note = (
            f"{n_papers} paper(s): too few to cluster (at least {MIN_PAPERS_TO_CLUSTER} needed), "
            "so all papers form one topic and the map uses PCA"
        )
        return ClusterResult(
            labels=np.zeros(n_papers, dtype=np.int64),
            reduced=embeddings.astype(np.float32),
            layout=_pca_layout(embeddings),
            params={"method": "single-topic"},
            notes=[note],
        )

    notes: list[str] = []
    n_neighbors = DEFAULT_N_NEIGHBORS if config.n_neighbors == "auto" else config.n_neighbors
    if n_neighbors > n_papers - 1:
        notes.append(f"{n_papers} papers: UMAP n_neighbors lowered from {n_neighbors} to {n_papers - 1}")
        n_neighbors = n_papers - 1
    n_components = config.n_components
    if n_components > n_papers - 3:
        notes.append(f"{n_papers} papers: UMAP n_components lowered from {n_components} to {n_papers - 3}")
        n_components = n_papers - 3
    if config.min_cluster_size == "auto":
        min_cluster_size = auto_min_cluster_size(n_papers)
        notes.append(f"min_cluster_size auto: {min_cluster_size} for {n_papers} papers")
    else:
        min_cluster_size = min(config.min_cluster_size, n_papers)
    if config.min_samples == "auto":
        min_samples = auto_min_samples(min_cluster_size)
    else:
        min_samples = config.min_samples

    max_cluster_size = largest_cluster_allowed(n_papers, min_cluster_size, config.max_topic_share)

    if parallel_layout is None:
        parallel_layout = n_papers >= PARALLEL_LAYOUT_MIN_PAPERS
    target = None
    if guide is not None and config.recluster_guide > 0 and (guide >= 0).any():
        target = (guide, config.recluster_guide)
        notes.append(
            f"guided by the topics of the clustering before (UMAP target weight {config.recluster_guide:g}; "
            f"{int((guide >= 0).sum()):,} of {n_papers:,} papers had one)"
        )
    consensus = config.method == "leiden"
    knn = exact_neighbours(embeddings, n_neighbors) if consensus else _nearest_neighbours(embeddings, n_neighbors, seed)
    map_build = functools.partial(_umap, embeddings, knn, n_neighbors, 2, config.map_min_dist, seed, target)
    extra: dict[str, Any] = {}
    with built_beside(map_build, "spawn" if parallel_layout else None, what="the 2-D map layout") as map_layout:
        if consensus:
            resolution = leiden_resolution(n_papers, config.leiden_resolution)
            members = leiden_members(n_papers, config.leiden_members)
            start = None if target is None else target[0]
            labels, rounds = leiden_consensus(
                embeddings, knn, seed, members, resolution, min_cluster_size, start, LEAST_NEIGHBOUR_SHARE
            )
            extra = {
                "leiden_members": members,
                "leiden_resolution": resolution,
                "consensus_rounds": rounds,
                "least_neighbour_share": LEAST_NEIGHBOUR_SHARE,
            }
        else:
            reduced = _umap(embeddings, knn, n_neighbors, n_components, min_dist=0.0, seed=seed, target=target)
            labels = hdbscan_labels(reduced, min_cluster_size, min_samples, max_cluster_size)
        layout = map_layout()
    if consensus:
        reduced = layout  # no layout decides a topic: the map stands for the reduced vectors
    if labels.max(initial=-1) < 0:
        notes.append(f"HDBSCAN found no dense group among {n_papers} papers: they are reported as one topic")
        labels = np.zeros(n_papers, dtype=np.int64)
    params = {
        "method": "leiden-consensus" if consensus else "umap+hdbscan",
        "n_neighbors": n_neighbors,
        "n_components": n_components,
        "min_cluster_size": min_cluster_size,
        "min_samples": min_samples,
        "max_cluster_size": max_cluster_size,
        "map_min_dist": config.map_min_dist,
        "metric": "cosine",
        **extra,
    }
    return ClusterResult(labels, reduced.astype(np.float32), layout.astype(np.float32), params, notes)


def _pca_layout(embeddings: np.ndarray) -> np.ndarray:
    """Deterministic 2-D coordinates for a handful of papers."""
    n_papers = embeddings.shape[0]
    layout = np.zeros((n_papers, 2), dtype=np.float32)
    if n_papers < 2:
        return layout
    centred = embeddings - embeddings.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ components[:2].T
    # Fix the sign of each axis so the picture does not flip between equal runs.
    signs = np.sign(coords[np.abs(coords).argmax(axis=0), range(coords.shape[1])])
    layout[:, : coords.shape[1]] = coords * np.where(signs == 0, 1, signs)
    return layout


def _nearest_neighbours(embeddings: np.ndarray, n_neighbors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances), each ndarray of shape (n_papers, n_neighbors), self first.

    Up to ``EXACT_KNN_LIMIT`` papers the search is exact and its distances the same bits on every
    CPU (:func:`pipeline.cluster.neighbours.cosine_knn`), so a seeded UMAP on the same vectors
    gives the same layout on AVX2 and AVX-512 machines.
    """
    if embeddings.shape[0] <= EXACT_KNN_LIMIT:
        from pipeline.cluster.neighbours import cosine_knn

        return cosine_knn(embeddings, n_neighbors)
    from umap.umap_ import nearest_neighbors

    indices, distances, _forest = nearest_neighbors(
        embeddings, n_neighbors, "cosine", {}, False, np.random.RandomState(seed), low_memory=True
    )
    return indices, distances


def _umap(
    embeddings: np.ndarray,
    knn: tuple[np.ndarray, np.ndarray],
    n_neighbors: int,
    n_components: int,
    min_dist: float,
    seed: int,
    target: tuple[np.ndarray, float] | None = None,
    n_epochs: int | None = None,
) -> np.ndarray:
    """A seeded UMAP layout; ``target``: (topic per paper, -1 = unknown; weight) for semi-supervised UMAP.

    ``n_epochs``: UMAP's optimisation epochs (None: its own choice, 200 from 10,000 papers, 500 below).

    Semi-supervised UMAP (umap-learn's categorical target; BERTopic's semi-supervised topic
    modelling) intersects the k-NN graph with the known topics: papers of one earlier topic
    are drawn together, papers without one are placed by their neighbours alone.
    """
    import warnings

    from umap import UMAP

    supervision = {} if target is None else {"target_metric": "categorical", "target_weight": target[1]}
    a, b = curve_parameters(min_dist)
    reducer = UMAP(
        n_neighbors=n_neighbors,
        n_components=n_components,
        min_dist=min_dist,
        a=a,
        b=b,
        metric="cosine",
        random_state=seed,  # seeded, so the same inputs give the same topics (UMAP then runs single-threaded)
        precomputed_knn=(knn[0], knn[1], None),
        init="spectral",
        n_epochs=n_epochs,
        **supervision,
    )
    with warnings.catch_warnings():
        # UMAP warns that a seed disables parallelism and that a precomputed kNN is used: both are intended.
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
        return reducer.fit_transform(embeddings, y=None if target is None else target[0])


def curve_parameters(min_dist: float) -> tuple[float, float]:
    """UMAP's a and b for ``min_dist`` (spread 1), rounded to ``CURVE_DIGITS`` significant digits.

    umap-learn fits them with numpy's power and exp, whose last bits differ by CPU (numpy's
    AVX-512 and AVX2 kernels: a = 1.93280839734315 vs 1.9328083980052901 for min_dist 0), and
    the layout, so the topics, followed those bits. Rounded, they are the same on every CPU.
    """
    from umap.umap_ import find_ab_params

    a, b = find_ab_params(1.0, min_dist)
    return float(f"{a:.{CURVE_DIGITS}g}"), float(f"{b:.{CURVE_DIGITS}g}")


def hdbscan_labels(
    reduced: np.ndarray, min_cluster_size: int, min_samples: int | None, max_cluster_size: int = 0
) -> np.ndarray:
    """HDBSCAN's clusters of the reduced vectors, -1 = outlier; ``max_cluster_size`` 0 = no cap."""
    import hdbscan

    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        max_cluster_size=max_cluster_size,
        metric="euclidean",
        cluster_selection_method="eom",
    )
    return clusterer.fit_predict(reduced).astype(np.int64)
