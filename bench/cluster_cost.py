"""What the cluster stage costs per ``cluster.method``, wall and CPU seconds, with its parts; prints a table.

    nice -n 10 .venv/bin/python bench/cluster_cost.py RUN_DIR [--first N] [--method NAME ...] [--fit-sample N]
        [--parts]

RUN_DIR is a run folder whose embed stage has finished (its vectors are read through the store;
e.g. the 74,728 papers of arxiv-daily-cs embedded by the preview backend, ``embed.backend:
model2vec``). Each row is one ``pipeline.cluster.sample_fit.fit_on_sample`` (the stage's fit,
seed 42, the local engine) with the default settings but ``method`` (and ``fit_sample``
when given): wall seconds, CPU seconds of this process and its finished children (the 2-D map's
process from 20,000 papers), topics and outlier share. ``--parts`` adds the parts: the k-NN
graph exact (``pipeline.cluster.consensus.exact_neighbours``) and by pynndescent (what UMAP
computes for the default method above 4,096 papers), the Leiden consensus alone, and the 2-D map
alone. Other helpers may share the cores: print ``uptime`` beside it and compare rows of one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

SEED = 42


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """``step()``'s result, wall seconds and CPU seconds."""
    start, cpu = time.perf_counter(), cpu_seconds()
    result = step()
    return result, time.perf_counter() - start, cpu_seconds() - cpu


def load(run_dir: Path, first: int | None) -> np.ndarray:
    """The run's vectors (the first ``first``)."""
    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    if store.finished("embed") is None:
        sys.exit(f"bench: {run_dir} has no finished embed stage: run its config with --until embed first")
    vectors = store.read_array("embed", "embeddings.npy")
    return vectors if first is None else vectors[:first]


def main() -> None:
    from pipeline.cluster.sample_fit import fit_on_sample
    from pipeline.config import ClusterConfig, LabelConfig
    from pipeline.engine import LocalEngine

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with a finished embed stage")
    parser.add_argument("--first", type=int, default=None, help="keep only the first N papers")
    parser.add_argument("--method", action="append", choices=["umap-hdbscan", "leiden"], help="default: both")
    parser.add_argument("--fit-sample", type=int, default=None, help="cluster.fit_sample for every row")
    parser.add_argument("--parts", action="store_true", help="also time the k-NN graphs, the consensus and the map")
    parser.add_argument("--parts-only", action="store_true", help="time the parts only")
    args = parser.parse_args()
    vectors, label = load(args.run, args.first), LabelConfig()
    print(f"{len(vectors):,} papers of {vectors.shape[1]} dimensions from {args.run}", flush=True)
    print("| method | fit_sample | topics | outliers | wall s | CPU s |\n|---|---|---|---|---|---|", flush=True)
    change: dict[str, Any] = {} if args.fit_sample is None else {"fit_sample": args.fit_sample}
    percentile = label.outlier_percentile if label.reduce_outliers else None
    for method in [] if args.parts_only else args.method or ["umap-hdbscan", "leiden"]:
        cluster = ClusterConfig().model_copy(update={**change, "method": method})
        result, wall, cpu = timed(
            lambda cluster=cluster: fit_on_sample(vectors, cluster, SEED, LocalEngine(), percentile)
        )
        labels = result.labels
        print(
            f"| {method} | {cluster.fit_sample} | {len(set(labels.tolist()) - {-1})} | {(labels < 0).mean():.1%} "
            f"| {wall:.1f} | {cpu:.1f} |",
            flush=True,
        )
    if args.parts or args.parts_only:
        parts(vectors, ClusterConfig(**change))


def parts(vectors: np.ndarray, cluster: Any) -> None:
    """Wall and CPU seconds of the cluster stage's parts on ``vectors``."""
    from umap.umap_ import nearest_neighbors

    from pipeline.cluster.consensus import exact_neighbours, leiden_consensus, leiden_members, leiden_resolution
    from pipeline.cluster.fit import _umap, auto_min_cluster_size

    k = 15 if cluster.n_neighbors == "auto" else cluster.n_neighbors
    print("| part | wall s | CPU s |\n|---|---|---|", flush=True)
    knn, wall, cpu = timed(lambda: exact_neighbours(vectors, k))
    print(f"| exact k-NN ({k}) | {wall:.1f} | {cpu:.1f} |", flush=True)
    approximate, wall, cpu = timed(
        lambda: nearest_neighbors(vectors, k, "cosine", {}, False, np.random.RandomState(SEED), low_memory=True)
    )
    print(f"| pynndescent k-NN ({k}) | {wall:.1f} | {cpu:.1f} |", flush=True)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(knn[0], approximate[0], strict=True)])
    print(f"| (pynndescent's recall of the exact neighbours: {recall:.4f}) | | |", flush=True)
    size = auto_min_cluster_size(len(vectors))
    resolution = leiden_resolution(len(vectors), cluster.leiden_resolution)
    members = leiden_members(len(vectors), cluster.leiden_members)
    (_, rounds), wall, cpu = timed(lambda: leiden_consensus(vectors, knn, SEED, members, resolution, size))
    print(f"| Leiden consensus ({members} members, {rounds} rounds) | {wall:.1f} | {cpu:.1f} |")
    _, wall, cpu = timed(lambda: _umap(vectors, knn, k, 2, cluster.map_min_dist, SEED))
    print(f"| 2-D map (UMAP) | {wall:.1f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
