"""Consensus clustering of the k-NN graph: topics that do not hinge on the seed (``cluster.method: leiden``).

One UMAP + HDBSCAN fit depends on its seed: on 2,000 arXiv papers the topics of two seeds
agreed with an ARI of 0.43 to 0.49, and a change of 1e-4 in the vectors moved them as much
(bench/stability.py). Here no step that decides a topic depends on a layout:

1. the exact cosine k-NN graph of the papers (:func:`exact_neighbours`: exact products on a
   grid, ``pipeline.cluster.neighbours``), the same for any block shape and on any CPU, weighted
   as UMAP weighs it (its fuzzy simplicial set, a function of the distances alone);
2. ``members`` Leiden partitions of that graph (modularity at ``resolution``, igraph), each with
   its own seed derived from the run's seed (:func:`member_seeds`);
3. each edge weighs the share of those partitions in which its two papers share a community
   (co-association, :func:`coassociation`), and the Leiden partitions are computed again on that
   consensus graph, up to ``CONSENSUS_ROUNDS`` times, until every edge is kept by all or none
   (Lancichinetti and Fortunato's consensus clustering, Sci. Rep. 2, 336, 2012);
4. the topics are the connected components of the edges kept by more than half of the last
   partitions (:func:`consensus_labels`); components smaller than ``min_cluster_size`` papers
   are outliers;
5. a paper with fewer than ``LEAST_NEIGHBOUR_SHARE`` of its nearest papers in its own topic
   (:func:`neighbour_share`, out of those its topic could fill) is an outlier too, and a topic
   left under ``min_cluster_size`` with it (:func:`without_loose_papers`): counts of integers on
   the exact graph, so the same on every CPU.

The "auto" settings (``AUTO_SETTINGS``) are resolution 3 and 50 members up to 2,000 papers, 1.5 and
100 from 7,700; the measurements that chose them follow. Measured
on int8 MiniLM vectors (BUILD_VERSION 3), seeds 1-5, noise 1e-4 (bench/stability.py and the same
steps outside the stage, 2026-12-07): 2,000 arXiv papers, ARI between seeds 0.969 (lowest pair
0.948; today's UMAP + HDBSCAN 0.459 / 0.359), 0.987 under noise (0.357), 36 topics (30-43), NMI
0.569 (0.532), NPMI 0.043 (0.040), 1.8% outliers (19.0%); 7,701 arXiv CS papers, 0.947 (0.925;
today 0.645 / 0.600), 0.955 (0.635), 41-42 topics (65-69), NMI 0.265 (0.226), NPMI 0.123
(0.139: lower), 1.6% outliers (30.6%). At resolution 2 the 2,000 papers' lowest pair was 0.867; at
3 the 7,701 papers' was 0.895. More loose papers out lift NPMI little and cost ARI: at share 0.4,
0.134 on the 7,701 papers but 0.884 under noise.

Why the NPMI of the 7,701 papers is lower: it is the mean over topics of the NPMI of each topic's
top 10 c-TF-IDF words (label stage, outliers reassigned first; seed 1: 6.4% stay today, 0.3% here), and
small topics score less (today's smallest quarter 0.096, its largest 0.161; here 0.096 and 0.151);
the Leiden topics that score lowest join small themes that HDBSCAN keeps apart ("event cameras,
underwater, spiking networks": 0.013). More, smaller topics do not help, fewer larger ones do, at a
cost in ARI. Seeds 1-3 on the 7,701 papers, each against today's 0.675 / 0.662, 0.635 under noise,
65-67 topics, NMI 0.226, NPMI 0.138 (same session; ARI mean / lowest, noise, topics, NMI, NPMI):
as here 0.953 / 0.946, 0.955, 41, 0.266, 0.122; shared-neighbour weights (shared / k) instead of
UMAP's 0.951 / 0.940, 0.952, 42-43, 0.259, 0.110; topics over 5% of the papers split by a second
consensus inside each (resolution 1) 0.931 / 0.923, 0.938, 54-55, 0.258, 0.129; 20 neighbours
0.933 / 0.911, 0.929, 36-38, 0.266, 0.130; 30 neighbours 0.955 / 0.947, 0.934, 31-33, 0.271, 0.136
(on the 2,000 papers at resolution 3 NPMI 0.055 but 0.927 under noise); resolution 1.75 0.939 /
0.927, 0.945, 35-36, 0.269, 0.132; resolution 1.5 0.939 / 0.920, 0.942, 30-32, 0.272, 0.140: the
NPMI reached, but under noise below 0.95, so "auto" stays at 2 from 7,700 papers. Under noise
the seed matters too (bench/stability.py compares seed 1 only): seeds 1, 2 and 3 against the same
seed on the noisy vectors agreed at 0.955, 0.936 and 0.957 at resolution 2, at 0.942, 0.918 and
0.931 at 1.5. With 100 members at resolution 1.5 (``leiden_members: 100, leiden_resolution: 1.5``)
every target held on seeds 1-5: 0.957 / 0.945, under noise 0.957, 0.975, 0.958, 0.952 and 0.966
(seeds 1-5), 29-31 topics, NMI 0.274, NPMI 0.145, 1.3% outliers, for twice the Leiden runs: "auto"
from 7,700 papers. On the 2,000 papers (resolution 3) 100 members gave 0.982 / 0.973, 0.982
under noise, NMI 0.572 but NPMI 0.038 (seeds 1-3; 50 members 0.042, today 0.040): 50 stay there.

What it costs: an exact k-NN search (quadratic in the papers) and ``members`` Leiden runs per
round, 2 to 4 rounds. At 7,701 papers 32.2 CPU seconds against today's 26.7 (5.3 vs 5.6 at 2,000);
at 74,728 papers (model2vec vectors) the exact k-NN took 69 CPU seconds (pynndescent 43, recall
0.94), the consensus of 50 members (4 rounds) 1,309 and the 2-D map 41: about 1,420 against 167
for today's whole stage (bench/cluster_cost.py). So ``cluster.fit_sample: auto`` fits it on all
papers up to ``LEIDEN_FIT_SAMPLE`` only (``pipeline.cluster.sample_fit``, where its cost and
stability at 74,728 papers are written), on a sample of that many drawn by the papers' ids above it,
and places the other papers by their nearest sample papers: the seed picks no paper there.
"""

from __future__ import annotations

import math
import random

import numpy as np

from pipeline.cluster.neighbours import BLOCK_ELEMENTS, nearest_exact, on_grid

OUTLIER = -1
# Consensus rounds at most: the partitions stop changing after 2-4 (2,000 and 7,701 arXiv papers).
CONSENSUS_ROUNDS = 5
# An edge is kept in the final topics when more than this share of the last round's partitions keep it.
KEEP_SHARE = 0.5
# "auto" settings: (papers, resolution, members) at the two sizes measured (bench/stability.py, seeds 1-5).
# 2,000 arXiv papers: resolution 3 with 50 members agreed at 0.969 (lowest pair 0.948), NPMI 0.043 (today
# 0.040); at 2, 0.913 (0.867); 100 members there lowered NPMI to 0.038. 7,701 arXiv CS papers: resolution
# 1.5 with 100 members agreed at 0.957 (0.945), at least 0.952 under noise at every seed, NPMI 0.145 (today
# 0.138); 50 members at 1.5: 0.918 under noise at seed 2; resolution 2 with 50: NPMI 0.122. Between the sizes
# both follow a straight line in log(papers) (resolution rounded to 3 decimals, members to a whole
# number); outside, they are held.
AUTO_SETTINGS = ((2_000, 3.0, 50), (7_700, 1.5, 100))
# A paper is an outlier when fewer than this share of its nearest papers share its topic (neighbour_share):
# at 0.2, 1.6-1.8% of the papers, and the seeds agree as well as without; at 0.3 (9-12%) the 7,701 papers'
# ARI under noise fell from 0.955 to 0.935, at 0.4 (18-20%) to 0.884, for an NPMI of 0.125-0.134 (0.122 without).
LEAST_NEIGHBOUR_SHARE = 0.2
# Leiden passes per partition: -1 = until none improves (5x the time of igraph's default 2, and needed:
# with 2, seeds 1-3 of 2,000 arXiv papers agreed with an ARI of 0.883, not 0.940, and under noise 0.918, not 0.974).
LEIDEN_ITERATIONS = -1


def _auto_position(n_papers: int) -> float:
    """Where ``n_papers`` lies between the two sizes of ``AUTO_SETTINGS``: 0 up to the first, 1 from the last."""
    (small, _, _), (large, _, _) = AUTO_SETTINGS
    position = (math.log(max(n_papers, 1)) - math.log(small)) / (math.log(large) - math.log(small))
    return min(1.0, max(0.0, position))


def leiden_resolution(n_papers: int, setting: float | str) -> float:
    """Leiden's modularity resolution for ``n_papers``: the setting, or for "auto" one from ``AUTO_SETTINGS``.

    "auto": the first size's resolution up to it, the last's from it, and in between a straight
    line in log(papers), rounded to 3 decimals (the same on every CPU).
    """
    if setting != "auto":
        return float(setting)
    (_, high, _), (_, low, _) = AUTO_SETTINGS
    return round(high + (low - high) * _auto_position(n_papers), 3)


def leiden_members(n_papers: int, setting: int | str) -> int:
    """Consensus members for ``n_papers``: the setting, or for "auto" a number from ``AUTO_SETTINGS``.

    "auto": the first size's members up to it, the last's from it, in between a straight line in
    log(papers) rounded to a whole number.
    """
    if setting != "auto":
        return int(setting)
    (_, _, few), (_, _, many) = AUTO_SETTINGS
    return round(few + (many - few) * _auto_position(n_papers))


def member_seeds(seed: int, members: int) -> list[int]:
    """The Leiden seeds of the consensus members of a run with ``seed``: ``members`` distinct seeds."""
    return [seed * 1_000 + index for index in range(members)]


def exact_neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each paper's ``k`` nearest papers by cosine, itself first: indices (n, k) int32, cosine distances (n, k) float32.

    embeddings: (n, dim) unit rows. Exact products (``nearest_exact``): the same graph for any
    block shape and on any CPU; equal similarities go to the lower row.
    """
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = vectors.shape[0]
    k = min(k, n)
    grid = on_grid(vectors)
    vectors_t = np.ascontiguousarray(vectors.T)
    block = max(1, BLOCK_ELEMENTS // max(n, 1))
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        columns, similarity = nearest_exact(vectors[start:stop], vectors_t, grid[start:stop], grid, k)
        # A paper is its own nearest (cosine 1); put it first even when a duplicate ties with it.
        own = columns == np.arange(start, stop)[:, None]
        order = np.argsort(~own, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(columns, order, axis=1)
        distances[start:stop] = np.clip(1.0 - np.take_along_axis(similarity, order, axis=1), 0.0, 2.0)
    distances[:, 0] = 0.0
    return indices, distances


def graph_edges(embeddings: np.ndarray, indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The k-NN graph's undirected edges and weights, as UMAP weighs them (its fuzzy simplicial set).

    Returns edges (m, 2) int64, each pair once with the lower row first, in row order, and
    weights (m,) float64 in (0, 1].
    """
    import warnings

    from umap.umap_ import fuzzy_simplicial_set

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        graph, _, _ = fuzzy_simplicial_set(
            embeddings, indices.shape[1], None, "cosine", knn_indices=indices, knn_dists=distances
        )
    graph = graph.tocoo()
    upper = (graph.row < graph.col) & (graph.data > 0)
    rows, columns, weights = graph.row[upper], graph.col[upper], graph.data[upper]
    order = np.lexsort((columns, rows))
    edges = np.column_stack([rows[order], columns[order]]).astype(np.int64)
    return edges, weights[order].astype(np.float64)


def leiden_partitions(
    n: int,
    edges: np.ndarray,
    weights: np.ndarray,
    resolution: float,
    seeds: list[int],
    start: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One Leiden partition (modularity at ``resolution``, ``LEIDEN_ITERATIONS`` passes) per seed: each (n,) int64.

    ``start``: (n,) int, a partition each one starts from (-1 = a community of its own); None = singletons.
    """
    import igraph

    graph = igraph.Graph(n=n, edges=edges.tolist(), edge_attrs={"weight": weights.tolist()})
    initial = None if start is None else starting_membership(start).tolist()
    partitions = []
    try:
        for seed in seeds:
            igraph.set_random_number_generator(random.Random(seed))
            found = graph.community_leiden(
                objective_function="modularity",
                weights="weight",
                resolution=resolution,
                n_iterations=LEIDEN_ITERATIONS,
                initial_membership=initial,
            )
            partitions.append(np.asarray(found.membership, dtype=np.int64))
    finally:
        igraph.set_random_number_generator(random)
    return partitions


def starting_membership(labels: np.ndarray) -> np.ndarray:
    """``labels`` (n,) int with each -1 made a community of its own: (n,) int64, renumbered 0, 1, ..."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    loose = np.flatnonzero(labels < 0)
    labels[loose] = labels.max(initial=-1) + 1 + np.arange(len(loose))
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def coassociation(edges: np.ndarray, partitions: list[np.ndarray]) -> np.ndarray:
    """Share of ``partitions`` in which each edge's two papers share a cluster (outliers, -1, share none).

    edges: (m, 2) rows; partitions: each (n,) int. Returns (m,) float64 in [0, 1].
    """
    together = np.zeros(len(edges), dtype=np.float64)
    for labels in partitions:
        first, second = labels[edges[:, 0]], labels[edges[:, 1]]
        together += (first == second) & (first != OUTLIER)
    return together / max(1, len(partitions))


def consensus_labels(n: int, edges: np.ndarray, together: np.ndarray, min_cluster_size: int) -> np.ndarray:
    """Components of the edges kept by more than ``KEEP_SHARE``; those under ``min_cluster_size`` papers are outliers.

    Returns (n,) int64, -1 = outlier, the clusters numbered by their lowest paper row (equal
    inputs give equal labels, whatever the partitions' own numbering).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    kept = edges[together > KEEP_SHARE]
    graph = coo_matrix((np.ones(len(kept), dtype=np.int8), (kept[:, 0], kept[:, 1])), shape=(n, n))
    _, component = connected_components(graph.tocsr(), directed=False)
    sizes = np.bincount(component, minlength=n)
    first_row = np.full(n, n, dtype=np.int64)
    np.minimum.at(first_row, component, np.arange(n))
    large = np.flatnonzero(sizes >= min_cluster_size)
    number = np.full(n, OUTLIER, dtype=np.int64)
    number[large[np.argsort(first_row[large], kind="stable")]] = np.arange(len(large))
    return number[component]


def neighbour_share(labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Share of each paper's nearest papers (itself left out) in its own cluster: (n,) float64 in [0, 1].

    labels: (n,) int; indices: (n, k) from :func:`exact_neighbours`, itself first. The share is
    of the neighbours its cluster could fill: k - 1, or the cluster's other papers when there are
    fewer (a paper of a 5-paper topic with its 4 fellows among its 14 nearest has share 1, not
    4/14: a small pile's small topics are not loose for being small; from 2,000 papers up every
    topic has at least ``min_cluster_size`` >= 15 papers, so nothing changes there). Counts of
    integers: the same on every CPU for the same graph and labels. An outlier's share is 0.
    """
    labels = np.asarray(labels)
    others = indices[:, 1:]
    member = labels != OUTLIER
    same = (labels[others] == labels[:, None]) & member[:, None]
    sizes = np.bincount(labels[member], minlength=labels.max(initial=-1) + 1)
    fellows = np.where(member, sizes[np.where(member, labels, 0)] - 1, 0)
    return same.sum(axis=1) / np.maximum(1, np.minimum(others.shape[1], fellows))


def without_loose_papers(
    labels: np.ndarray, share: np.ndarray, least_share: float, min_cluster_size: int
) -> np.ndarray:
    """``labels`` with each paper whose ``share`` is under ``least_share`` made an outlier.

    Clusters then left with fewer than ``min_cluster_size`` papers become outliers too, and the
    clusters are numbered again by their lowest paper row. Returns (n,) int64, -1 = outlier.
    """
    labels = np.where(share < least_share, OUTLIER, np.asarray(labels, dtype=np.int64))
    member = labels != OUTLIER
    sizes = np.bincount(labels[member], minlength=labels.max(initial=-1) + 1)
    member &= sizes[np.where(member, labels, 0)] >= min_cluster_size
    clusters, first_row = np.unique(labels[member], return_index=True)
    number = np.full(len(clusters), OUTLIER, dtype=np.int64)
    number[np.argsort(first_row, kind="stable")] = np.arange(len(clusters))
    result = np.full(len(labels), OUTLIER, dtype=np.int64)
    result[member] = number[np.searchsorted(clusters, labels[member])]
    return result


def leiden_consensus(
    embeddings: np.ndarray,
    knn: tuple[np.ndarray, np.ndarray],
    seed: int,
    members: int,
    resolution: float,
    min_cluster_size: int,
    guide: np.ndarray | None = None,
    least_share: float = 0.0,
) -> tuple[np.ndarray, int]:
    """The consensus topics of ``members`` Leiden partitions of the k-NN graph, and the rounds it took.

    embeddings: (n, dim) unit rows; knn: (indices, distances) from :func:`exact_neighbours`.
    ``guide``: (n,) the topics of an earlier clustering (-1 = none): the first round's partitions
    start from them instead of from single papers, so topics that still hold come back.
    ``least_share``: papers with fewer of their nearest papers in their own topic
    (:func:`neighbour_share`) are outliers (:func:`without_loose_papers`); 0 = none.
    Returns labels (n,) int64, -1 = outlier, and the number of rounds (1 to ``CONSENSUS_ROUNDS``).
    """
    n = embeddings.shape[0]
    edges, weights = graph_edges(embeddings, *knn)
    seeds = member_seeds(seed, members)
    together = coassociation(edges, leiden_partitions(n, edges, weights, resolution, seeds, guide))
    rounds = 1
    while rounds < CONSENSUS_ROUNDS and not np.all((together == 0) | (together == 1)):
        kept = together > 0
        edges, weights = edges[kept], together[kept]
        together = coassociation(edges, leiden_partitions(n, edges, weights, resolution, seeds))
        rounds += 1
    labels = consensus_labels(n, edges, together, min_cluster_size)
    if least_share > 0:
        labels = without_loose_papers(labels, neighbour_share(labels, knn[0]), least_share, min_cluster_size)
    return labels, rounds
