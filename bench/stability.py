"""Do the topics hinge on the seed? The cluster stage's fit over seeds and under noise, side by side.

    nice -n 10 .venv/bin/python bench/stability.py RUN_DIR [RUN_DIR ...] [--seeds 5] [--first N] [--only NAME ...]
        [--once NAME ...]

RUN_DIR is a run folder whose embed stage has finished (its vectors and papers are read through
the store), e.g. ``python -m pipeline run configs/arxiv-kaggle.yaml --until embed`` makes
``outputs/arxiv-kaggle``; ``--first N`` keeps the first N papers (the issue's 7.7k of
arxiv-daily-cs); ``--only`` measures the named approaches only, ``--once`` the named ones at seed 1
alone (no ARI; e.g. today's cost beside leiden's at 75k). For each approach and run it
prints: pairwise ARI of the clusterings of seeds 1..N (mean and lowest; outliers as one group),
ARI between seed 1 and seed 1 on the vectors plus Gaussian noise of sigma 1e-4 per component
(renormalised), the mean pairwise ARI of the topics after the label stage's merge and outlier
reassignment (``pipeline.label.merged_clusters``), topic counts, NMI against the papers'
categories (outliers as one group, pipeline.agreement), NPMI of the label stage's c-TF-IDF
keywords (``pipeline.metrics.npmi``, as metrics.json has it; mean over the seeds), the outlier
share before the label stage, and the wall and CPU seconds of one clustering (mean; CPU counts
this process and its finished children; a shared 2-core machine: compare within one run only).

Approaches (the stage's own fit, ``pipeline.cluster.sample_fit.fit_on_sample``, unless said):
- ``today``: the run's cluster settings (``cluster.method: umap-hdbscan``);
- ``neighbours 30, components 10``: UMAP sees twice the neighbours and gives HDBSCAN ten dimensions;
- ``spectral kNN graph``: HDBSCAN (same sizes) on a 5-D spectral embedding of the symmetric
  cosine 15-NN graph (scikit-learn), deterministic but for ARPACK's start vector;
- ``HDBSCAN on the kNN graph``: HDBSCAN on the exact cosine 60-NN distances themselves
  (sparse, precomputed): no UMAP and no seed;
- ``UMAP consensus 10 x 50 epochs``: HDBSCAN on 10 UMAP layouts (50 epochs each) of one exact
  k-NN graph, the co-association of each edge, the components of the edges most of them keep;
- ``Leiden, 1 partition``: ``cluster.method: leiden`` with ``leiden_members: 1``;
- ``Leiden consensus (default settings)``: ``cluster.method: leiden`` (50 members, resolution "auto":
  3 up to 2,000 papers, 2 from 7,700; papers with under 20% of their neighbours in their topic out);
- ``Leiden consensus, resolution 3``: the same at resolution 3;
- ``Leiden consensus, sample 10,000`` / ``20,000`` / ``all papers``: ``cluster.fit_sample`` set so
  (the default settings' "auto" fits leiden on all papers up to
  ``pipeline.cluster.sample_fit.LEIDEN_FIT_SAMPLE``, on a sample drawn by the papers' ids above it);
- ``Leiden consensus, resolution 1.5``: the same at resolution 1.5 (fewer, larger topics: on the
  7,701 papers the NPMI of today, but less stable under noise; ``pipeline.cluster.consensus``);
- ``Leiden consensus, 100 members, res. 1.5``: the same with 100 members (stable under noise again).

The 75k table (74,728 arXiv CS papers, model2vec preview vectors; a run folder of arxiv-daily-cs
with ``embed.backend: model2vec`` run ``--until embed``):

    nice -n 10 .venv/bin/python bench/stability.py RUN_DIR --once today \
        --only "Leiden consensus (default settings)" --seeds 3 --jobs 5

Measured so 2026-12-07 (AVX-512 VNNI; the 5 clusterings at once beside other helpers' work, load
9-25 on the 2 cores: the wall seconds say little, the CPU seconds are each clustering's own):

| run | papers | approach | ARI seeds mean/low | ARI noise | ARI labelled | topics | NMI | NPMI | outl. | s wall/cpu |
|---|---|---|---|---|---|---|---|---|---|---|
| n75 | 74,728 | today (seed 1 only) | - | - | - | 76 | 0.151 | 0.173 | 63.6% | 1802 / 170.5 |
| n75 | 74,728 | Leiden, 15,000 keyed | 0.835 / 0.799 | 0.826 | 0.833 | 31-32 | 0.184 | 0.137 | 1.4% | 1991 / 134.3 |

Measured last session (AVX-512 VNNI, int8 vectors; before NPMI and the graph approaches):

| run | papers | approach | ARI seeds (mean / lowest) | ARI noise 1e-4 | topics | NMI | outliers |
|---|---|---|---|---|---|---|---|
| kaggle | 2,000 | neighbours 30, components 10 | 0.483 / 0.318 | 0.296 | 25-39 | 0.534 | 23.2% |
| kaggle | 2,000 | spectral kNN graph | 0.999 / 0.999 | 0.925 | 13 | 0.483 | 28.2% |
| daily-cs, first 47 files | 7,701 | neighbours 30, components 10 | 0.696 / 0.666 | 0.691 | 56-58 | 0.230 | 31.0% |
| daily-cs, first 47 files | 7,701 | spectral kNN graph | 1.000 / 1.000 | 0.127 | 9 | 0.119 | 7.6% |

Measured 2026-12-07 (AVX-512 VNNI, int8 vectors; kaggle = arxiv-kaggle-2000, daily = the first
47 files of arxiv-daily-cs; ARI labelled = after the label stage; load average 12-24 on the 2
shared cores, so the seconds are far above an idle machine's: compare them within a table only):

| run | papers | approach | ARI seeds mean/low | ARI noise | ARI labelled | topics | NMI | NPMI | outl. | s wall/cpu|
|---|---|---|---|---|---|---|---|---|---|---|
| kaggle | 2,000 | today | 0.489 / 0.404 | 0.355 | 0.548 | 38-48 | 0.515 | 0.056 | 22.7% | 36.7 / 5.3 |
| kaggle | 2,000 | HDBSCAN on the kNN graph | 1.000 / 1.000 | 0.997 | 1.000 | 11 | 0.222 | 0.131 | 74.0% | 11.9 / 1.4 |
| kaggle | 2,000 | UMAP consensus 10 x 50 | 0.612 / 0.561 | 0.559 | 0.668 | 28-35 | 0.504 | 0.046 | 25.5% | 32.4 / 3.2 |
| kaggle | 2,000 | Leiden, 1 partition | 0.708 / 0.625 | 0.862 | 0.708 | 22-25 | 0.561 | 0.046 | 0.0% | 25.2 / 2.4 |
| kaggle | 2,000 | Leiden consensus (default) | 0.917 / 0.870 | 0.974 | 0.917 | 23 | 0.565 | 0.044 | 0.0% | 53.0 / 5.2 |
| kaggle | 2,000 | Leiden consensus, res. 3 | 0.981 / 0.974 | 0.984 | 0.981 | 35 | 0.570 | 0.025 | 0.4% | 68.7 / 6.3 |
| daily | 7,701 | today | 0.646 / 0.588 | 0.651 | 0.742 | 64-73 | 0.229 | 0.130 | 28.2% | 249.1/25.7 |
| daily | 7,701 | HDBSCAN on the kNN graph | 1.000 / 1.000 | 0.998 | 1.000 | 2 | 0.012 | 0.157 | 96.6% | 64.5 / 6.2 |
| daily | 7,701 | Leiden, 1 partition | 0.794 / 0.747 | 0.892 | 0.790 | 40-42 | 0.262 | 0.118 | 0.4% | 102.1 / 11.1 |
| daily | 7,701 | Leiden consensus (default)| 0.961 / 0.939 | 0.976 | 0.960 | 40-41 | 0.265 | 0.123 | 0.4% | 274/31.6 |

Measured 2026-12-07, third session (AVX-512 VNNI; int8 vectors of BUILD_VERSION 3, so "today" moved
too; one run of the script per corpus, both rows in it, load 2-20 on the 2 shared cores):

| run | papers | approach | ARI seeds mean/low | ARI noise | ARI labelled | topics | NMI | NPMI | outl. | s wall/cpu|
|---|---|---|---|---|---|---|---|---|---|---|
| kaggle | 2,000 | today | 0.459 / 0.359 | 0.357 | 0.537 | 30-43 | 0.532 | 0.040 | 19.0% | 40.2 / 5.6 |
| kaggle | 2,000 | Leiden consensus | 0.969 / 0.948 | 0.987 | 0.969 | 36 | 0.569 | 0.043 | 1.8% | 34.4 / 5.3 |
| daily | 7,701 | today | 0.645 / 0.600 | 0.635 | 0.709 | 65-69 | 0.226 | 0.139 | 30.6% | 148.1/26.7 |
| daily | 7,701 | Leiden consensus | 0.947 / 0.925 | 0.955 | 0.946 | 41-42 | 0.265 | 0.123 | 1.6% | 69.3/32.2 |

The Leiden consensus (resolution 3 at 2,000 papers, 2 at 7,701; papers with under 20% of their
neighbours in their topic out) meets the ARI targets on both (every pair >= 0.9, >= 0.95 under
noise) with a higher NMI and fewer outliers, and the NPMI on the 2,000 papers, but not the NPMI
on the 7,701 (0.123 vs 0.139); at 74,728 papers its consensus alone took 1,309 CPU seconds
(50 members, 4 rounds) against today's whole stage's 167 (bench/cluster_cost.py): it stays an option.

The kaggle rows (but resolution 3) came from one run of the script; the resolution-3 row and
the daily rows from parallel runs of it (one per approach, to finish on the loaded machine).
The UMAP consensus was not run on the 7,701 papers (it failed on the 2,000 already).

The Leiden consensus meets the ARI targets on the 7,701 papers (0.961, lowest pair 0.939; 0.976
under noise) and comes close on the 2,000 (mean 0.917 but lowest pair 0.870; 0.974 under noise),
with a higher NMI, almost no outliers and about half the topics; but its NPMI is lower (0.044 vs
0.056, 0.123 vs 0.130; at resolution 3 0.025), and its cost at 75k is unmeasured (an exact k-NN
search, quadratic, and 50 Leiden runs per round): it is ``cluster.method: leiden``, an option, and
the default is unchanged. HDBSCAN on the raw k-NN graph is stable only because it calls nearly
every paper an outlier.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.agreement import label_agreement  # noqa: E402
from pipeline.cluster.sample_fit import fit_on_sample  # noqa: E402
from pipeline.config import ClusterConfig, LabelConfig, parse_config  # noqa: E402
from pipeline.engine import LocalEngine  # noqa: E402
from pipeline.stability import pairwise_ari  # noqa: E402
from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

NOISE = 1e-4
Fit = Callable[[np.ndarray, ClusterConfig, int, "float | None", list[str]], np.ndarray]


def stage_fit(
    embeddings: np.ndarray, config: ClusterConfig, seed: int, percentile: float | None, keys: list[str]
) -> np.ndarray:
    """The cluster stage's fit, given the papers' ids as the stage gives them (they draw leiden's sample)."""
    return fit_on_sample(embeddings, config, seed, LocalEngine(), percentile, keys=keys).labels


def _sizes(n_papers: int, config: ClusterConfig) -> tuple[int, int]:
    from pipeline.cluster.fit import auto_min_cluster_size, auto_min_samples

    size = auto_min_cluster_size(n_papers) if config.min_cluster_size == "auto" else config.min_cluster_size
    return size, auto_min_samples(size) if config.min_samples == "auto" else config.min_samples


def spectral_fit(
    embeddings: np.ndarray, config: ClusterConfig, seed: int, percentile: float | None, keys: list[str]
) -> np.ndarray:
    from sklearn.manifold import spectral_embedding
    from sklearn.neighbors import kneighbors_graph

    from pipeline.cluster.fit import hdbscan_labels

    graph = kneighbors_graph(embeddings, config.n_neighbors, metric="cosine", mode="connectivity")
    reduced = spectral_embedding(0.5 * (graph + graph.T), n_components=config.n_components, random_state=seed)
    return hdbscan_labels(reduced, *_sizes(len(embeddings), config))


def knn_graph_fit(
    embeddings: np.ndarray, config: ClusterConfig, seed: int, percentile: float | None, keys: list[str]
) -> np.ndarray:
    """HDBSCAN on the exact cosine k-NN graph itself (sparse distances, no UMAP): no seed at all."""
    import hdbscan
    from scipy.sparse import csr_matrix

    from pipeline.cluster.consensus import exact_neighbours
    from pipeline.cluster.fit import largest_cluster_allowed

    n = len(embeddings)
    indices, distances = exact_neighbours(embeddings, 4 * int(config.n_neighbors))
    graph = csr_matrix(
        (distances.ravel() + 1e-6, indices.ravel(), np.arange(0, n * indices.shape[1] + 1, indices.shape[1])),
        shape=(n, n),
    )
    graph = graph.maximum(graph.T)
    size, samples = _sizes(n, config)
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=size, min_samples=samples, metric="precomputed",
        max_cluster_size=largest_cluster_allowed(n, size, config.max_topic_share),
    )  # fmt: skip
    return clusterer.fit_predict(graph).astype(np.int64)


def umap_consensus_fit(
    embeddings: np.ndarray, config: ClusterConfig, seed: int, percentile: float | None, keys: list[str]
) -> np.ndarray:
    """HDBSCAN on 10 UMAP layouts (50 epochs each) of one exact k-NN graph, then the groups most of them share.

    The co-association of each k-NN edge (``pipeline.cluster.consensus``) over the 10 clusterings;
    the topics are the components of the edges kept by more than half (smaller than
    min_cluster_size: outliers). Measured here only: it is not a cluster.method.
    """
    from pipeline.cluster.consensus import coassociation, consensus_labels, exact_neighbours, member_seeds
    from pipeline.cluster.fit import _umap, hdbscan_labels, largest_cluster_allowed

    n, k = len(embeddings), int(config.n_neighbors)
    knn = exact_neighbours(embeddings, k)
    size, samples = _sizes(n, config)
    cap = largest_cluster_allowed(n, size, config.max_topic_share)
    clusterings = [
        hdbscan_labels(_umap(embeddings, knn, k, config.n_components, 0.0, member, None, 50), size, samples, cap)
        for member in member_seeds(seed, 10)
    ]
    edges = np.column_stack([np.repeat(np.arange(n), k), knn[0].ravel()]).astype(np.int64)
    edges = edges[edges[:, 0] != edges[:, 1]]
    return consensus_labels(n, edges, coassociation(edges, clusterings), size)


LEIDEN = {"method": "leiden"}
APPROACHES: dict[str, tuple[Fit, dict]] = {
    "today": (stage_fit, {}),
    "neighbours 30, components 10": (stage_fit, {"n_neighbors": 30, "n_components": 10}),
    "spectral kNN graph": (spectral_fit, {}),
    "HDBSCAN on the kNN graph": (knn_graph_fit, {}),
    "UMAP consensus 10 x 50 epochs": (umap_consensus_fit, {}),
    "Leiden, 1 partition": (stage_fit, {**LEIDEN, "leiden_members": 1}),
    "Leiden consensus (default settings)": (stage_fit, LEIDEN),
    "Leiden consensus, resolution 3": (stage_fit, {**LEIDEN, "leiden_resolution": 3.0}),
    "Leiden consensus, sample 10,000": (stage_fit, {**LEIDEN, "fit_sample": 10_000}),
    "Leiden consensus, sample 20,000": (stage_fit, {**LEIDEN, "fit_sample": 20_000}),
    "Leiden consensus, all papers": (stage_fit, {**LEIDEN, "fit_sample": "all"}),
    "Leiden consensus, resolution 1.5": (stage_fit, {**LEIDEN, "leiden_resolution": 1.5}),
    "Leiden consensus, 100 members, res. 1.5": (stage_fit, {**LEIDEN, "leiden_resolution": 1.5, "leiden_members": 100}),
}


@dataclass(frozen=True)
class Run:
    """What one run folder gives the bench: its vectors, the papers' categories and words, its settings."""

    vectors: np.ndarray
    ids: list[str]
    categories: list[str]
    texts: list[str]
    tokens: object  # pipeline.terms.TokenizedTexts
    counts: object  # pipeline.terms.TermCounts
    cluster: ClusterConfig
    label: LabelConfig


def load_run(run_dir: Path, first: int | None) -> Run:
    """The run's vectors, categories, texts (tokenised and counted as the label stage does) and settings."""
    from pipeline.label.keywords import term_counts_for
    from pipeline.schema import paper_texts
    from pipeline.terms import tokenize_texts

    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    if store.finished("embed") is None or not (run_dir / "manifest.json").is_file():
        sys.exit(f"bench: {run_dir} has no finished embed stage: run its config with --until embed first")
    config = parse_config(json.loads((run_dir / "manifest.json").read_text())["config"])
    vectors = store.read_array("embed", "embeddings.npy")
    papers = store.read_table("parse", "papers.parquet")
    if first is not None:
        vectors, papers = vectors[:first], papers.iloc[:first].reset_index(drop=True)
    texts = paper_texts(papers)
    tokens = tokenize_texts(texts)
    counts = term_counts_for(tokens, config.label)
    ids = papers["paper_id"].astype(str).tolist()
    return Run(vectors, ids, papers["label"].astype(str).tolist(), texts, tokens, counts, config.cluster, config.label)


def label_stage(run: Run, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """The label stage's topics of a clustering (merged, outliers reassigned) and their NPMI.

    The keywords are the label stage's c-TF-IDF keywords (representation "none") and NPMI is
    ``pipeline.metrics.npmi`` of their top words over the papers' texts, as in metrics.json.
    """
    from pipeline.label import merged_clusters
    from pipeline.label.keywords import ctfidf_keywords
    from pipeline.metrics import npmi, top_words

    merged, _ = merged_clusters(labels, run.vectors, run.label)
    topics, keywords, _ = ctfidf_keywords(run.counts, merged, run.label)  # type: ignore[arg-type]
    words = [top_words([word for word, _ in keywords[topic]]) for topic in sorted(keywords) if topic >= 0]
    value = npmi(words, run.texts, tokens=run.tokens)  # type: ignore[arg-type]
    return topics, float("nan") if value is None else value


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the 2-D map's process, workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_fit(
    approach: Fit, embeddings: np.ndarray, config: ClusterConfig, seed: int, percentile: float | None, keys: list[str]
) -> tuple[np.ndarray, float, float]:
    """``approach``'s clustering, with its wall and CPU seconds (measured where it runs: here or in a worker)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    labels = approach(embeddings, config, seed, percentile, keys)
    return labels, time.perf_counter() - start, cpu_seconds() - cpu


def submit_fits(run: Run, approach: Fit, config: ClusterConfig, seeds: int, pool: Executor | None) -> list[Future]:
    """The clusterings of seeds 1..``seeds``, then (with more than one seed) of seed 1 on the noisy vectors."""
    vectors = [run.vectors] * seeds
    if seeds > 1:
        noisy = run.vectors + np.random.default_rng(0).normal(0, NOISE, run.vectors.shape)
        vectors.append((noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32))
    percentile, futures = run.label.outlier_percentile, []
    for index, embeddings in enumerate(vectors):
        seed = 1 + index % seeds
        if pool is None:
            future: Future = Future()
            future.set_result(timed_fit(approach, embeddings, config, seed, percentile, run.ids))
        else:
            future = pool.submit(timed_fit, approach, embeddings, config, seed, percentile, run.ids)
        futures.append(future)
    return futures


def measure(run: Run, futures: list[Future], seeds: int) -> dict:
    """The row of one approach from its clusterings (:func:`submit_fits`)."""
    results = [future.result() for future in futures]
    runs = [(labels, (wall, cpu)) for labels, wall, cpu in results[:seeds]]
    clusterings = [labels for labels, _ in runs]
    perturbed = results[-1][0]  # with one seed (--once) the clustering itself: no ARI is printed
    labelled = [label_stage(run, labels) for labels in clusterings]
    counts = [len(set(labels.tolist()) - {-1}) for labels in clusterings]
    nmis = [label_agreement(labels.tolist(), run.categories)["nmi"] or float("nan") for labels in clusterings]
    return {
        "ari_mean": float(np.mean(pairwise_ari(clusterings))) if seeds > 1 else float("nan"),
        "ari_min": min(pairwise_ari(clusterings)) if seeds > 1 else float("nan"),
        "ari_noise": pairwise_ari([clusterings[0], perturbed])[0] if seeds > 1 else float("nan"),
        "ari_labelled": float(np.mean(pairwise_ari([topics for topics, _ in labelled]))) if seeds > 1 else float("nan"),
        "topics": f"{min(counts)}-{max(counts)}",
        "nmi": float(np.mean(nmis)),
        "npmi": float(np.mean([value for _, value in labelled])),
        "outliers": float(np.mean([(labels < 0).mean() for labels in clusterings])),
        "seconds": float(np.mean([seconds for _, (seconds, _) in runs])),
        "cpu": float(np.mean([cpu for _, (_, cpu) in runs])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with a finished embed stage")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first", type=int, default=None, help="keep only the first N papers")
    parser.add_argument("--only", action="append", default=[], choices=sorted(APPROACHES), help="measure only these")
    parser.add_argument(
        "--once", action="append", default=[], choices=sorted(APPROACHES),
        help="of these, one seed only (topics, NMI, NPMI, outliers, seconds; no ARI): e.g. today's cost at 75k",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="clusterings at once, each in a process of its own")
    args = parser.parse_args()
    header = (
        "| run | papers | approach | ARI seeds (mean / lowest) | ARI noise 1e-4 | ARI after label stage "
        "| topics | NMI | NPMI | outliers | cluster s (wall / CPU) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    names = args.once + args.only
    chosen = {name: APPROACHES[name] for name in names} if names else APPROACHES
    pool = None if args.jobs == 1 else ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork"))
    for run_dir in args.runs:
        run = load_run(run_dir, args.first)
        seeds = {name: 1 if name in args.once else args.seeds for name in chosen}
        pending = {
            name: submit_fits(run, approach, run.cluster.model_copy(update=change), seeds[name], pool)
            for name, (approach, change) in chosen.items()
        }
        for name, futures in pending.items():
            row = measure(run, futures, seeds[name])
            print(
                f"| {run_dir.name} | {len(run.vectors):,} | {name} | {row['ari_mean']:.3f} / {row['ari_min']:.3f} "
                f"| {row['ari_noise']:.3f} | {row['ari_labelled']:.3f} | {row['topics']} | {row['nmi']:.3f} "
                f"| {row['npmi']:.3f} | {100 * row['outliers']:.1f}% | {row['seconds']:.1f} / {row['cpu']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
