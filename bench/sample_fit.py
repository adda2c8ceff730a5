"""The clusters fitted on all papers against fitted on a sample + the rest assigned; prints a table.

    .venv/bin/python bench/sample_fit.py RUN_DIR [--sample 20000] [--seed 42] [--dask]

RUN_DIR is a run stopped after embed or later (``--until embed``): its
``01_parse/papers.parquet`` (the ``label`` column: the arXiv primary category) and
``02_embed/embeddings.npy`` are read, e.g. a run of configs/arxiv-daily-cs.yaml (74,728
papers). The embedding backend is whatever that run used (its manifest says; printed).

Rows:
- full fit: ``pipeline.cluster.fit.cluster_papers`` on every paper (the cluster stage today);
- sample + assign: ``cluster_papers`` on a seeded sample of ``--sample`` papers, then
  ``pipeline.cluster.sample_fit.assign_rest`` for the others (labels, and the 2-D map and reduced
  coordinates from the neighbours), with the outlier bar (``outlier_percentile`` 5, as
  ``label.reduce_outliers`` does) and without it (outliers as the neighbours vote).

Columns: topics and outlier share after the cluster stage; the label stage's topic count
cap (merge to 100) and outlier reassignment applied to every row alike, then topics,
outlier share and NMI against the primary category (outliers as one group, as
``pipeline.metrics``); the seconds of the cluster stage: fit, assignment, total (this process
only; ``--dask`` also runs the assignment on a 2-worker Dask LocalCluster in partitions and
checks that it gives the same arrays); and the CPU seconds of the whole cluster stage
(this process and the child that lays out the 2-D map), which a busy machine disturbs less
than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.cluster.fit import cluster_papers  # noqa: E402
from pipeline.cluster.sample_fit import assign_rest, choose_sample, rest_of  # noqa: E402
from pipeline.config import ClusterConfig  # noqa: E402
from pipeline.label import AUTO_MAX_TOPICS, reassign_outliers  # noqa: E402
from pipeline.label.geometry import merge_to_target  # noqa: E402
from pipeline.metrics import label_agreement  # noqa: E402
from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

OUTLIER_PERCENTILE = 5.0  # label.outlier_percentile's default


def label_stage_topics(labels: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """What the label stage makes of cluster labels with its defaults: at most 100 topics, outliers reassigned."""
    if len(set(labels.tolist()) - {-1}) > AUTO_MAX_TOPICS:
        labels, _ = merge_to_target(labels, embeddings, AUTO_MAX_TOPICS)
    labels, _ = reassign_outliers(labels, embeddings, OUTLIER_PERCENTILE)
    return labels


class Clock:
    """Wall and CPU seconds since it was made; CPU counts this process and its finished children."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def lap(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds)."""
        return time.perf_counter() - self.wall, self._cpu() - self.cpu


def row(name, fitted: int, labels, embeddings, categories, fit_s: tuple, assign_s: tuple) -> dict:
    final = label_stage_topics(labels, embeddings)
    return {
        "fit": name,
        "fitted papers": fitted,
        "topics (cluster)": len(set(labels.tolist()) - {-1}),
        "outliers (cluster)": round(float((labels == -1).mean()), 4),
        "topics (label)": len(set(final.tolist()) - {-1}),
        "outliers (label)": round(float((final == -1).mean()), 4),
        "NMI (label)": round(label_agreement(final.tolist(), categories)["nmi"], 4),
        "NMI (cluster)": round(label_agreement(labels.tolist(), categories)["nmi"], 4),
        "fit s": round(fit_s[0], 1),
        "assign s": round(assign_s[0], 1),
        "stage s": round(fit_s[0] + assign_s[0], 1),
        "stage CPU s": round(fit_s[1] + assign_s[1], 1),
    }


def assign_partition(rows: np.ndarray, sample_embeddings, sample_labels, sample_coords, rest_embeddings, k, percentile):
    """assign_rest on one partition of the rest (run on a worker)."""
    return assign_rest(sample_embeddings, sample_labels, sample_coords, rest_embeddings[rows], k, percentile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dask", action="store_true", help="also assign on a 2-worker Dask LocalCluster")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--full-labels", type=Path, help="keep the full fit's labels (.npy) here; reuse them when there"
    )
    args = parser.parse_args()

    store = ArtifactStore(args.run_dir, args.run_dir.parent / ".cache", STAGE_NAMES)
    papers = store.read_table("parse", "papers.parquet")[["label"]]
    embeddings = store.read_array("embed", "embeddings.npy")
    categories = [str(label) if label is not None else "" for label in papers["label"].tolist()]
    manifest = json.loads((args.run_dir / "manifest.json").read_text())
    embed = manifest.get("config", {}).get("embed", {})
    print(f"{len(embeddings)} papers, vectors {embeddings.shape[1]}-d from {embed.get('backend', '?')}", flush=True)
    config, seed = ClusterConfig(), args.seed
    rows = []

    saved = args.full_labels
    if saved is not None and saved.exists():  # the full fit of an earlier run of this script: labels and seconds
        full_labels, full_s = np.load(saved), tuple(json.loads(saved.with_suffix(".json").read_text())["seconds"])
    else:
        clock = Clock()
        full_labels = cluster_papers(embeddings, config, seed).labels
        full_s = clock.lap()
        if saved is not None:
            np.save(saved, full_labels)
            saved.with_suffix(".json").write_text(json.dumps({"seconds": full_s}))
    rows.append(row("full fit", len(embeddings), full_labels, embeddings, categories, full_s, (0.0, 0.0)))
    print(rows[-1], flush=True)

    clock = Clock()
    sample = choose_sample(len(embeddings), args.sample, seed)
    rest = rest_of(len(embeddings), sample)
    fitted = cluster_papers(embeddings[sample], config, seed)
    fit_s = clock.lap()
    k = int(fitted.params.get("n_neighbors", 15))
    coords = np.hstack([fitted.layout, fitted.reduced])
    for name, percentile in (("sample + assign, bar", OUTLIER_PERCENTILE), ("sample + assign, no bar", None)):
        clock = Clock()
        rest_labels, _ = assign_rest(embeddings[sample], fitted.labels, coords, embeddings[rest], k, percentile)
        assign_s = clock.lap()
        labels = np.empty(len(embeddings), dtype=np.int64)
        labels[sample], labels[rest] = fitted.labels, rest_labels
        rows.append(row(name, len(sample), labels, embeddings, categories, fit_s, assign_s))
        print(rows[-1], flush=True)

    if args.dask:
        from pipeline.engine import EngineConfig, open_engine

        local = assign_rest(embeddings[sample], fitted.labels, coords, embeddings[rest], k, OUTLIER_PERCENTILE)
        start = time.perf_counter()
        with open_engine(EngineConfig(kind="dask", workers=2)) as engine:
            opened = time.perf_counter() - start
            parts = np.array_split(np.arange(len(rest)), 8)
            common = {
                "sample_embeddings": embeddings[sample],
                "sample_labels": fitted.labels,
                "sample_coords": coords,
                "rest_embeddings": embeddings[rest],
                "k": k,
                "percentile": OUTLIER_PERCENTILE,
            }
            start = time.perf_counter()
            results = engine.map(assign_partition, parts, timeout_s=1800, common=common)
            mapped = time.perf_counter() - start
        dask_labels = np.concatenate([part_labels for part_labels, _ in results])
        dask_coords = np.concatenate([part_coords for _, part_coords in results])
        print(
            f"dask, 2 workers, 8 parts: cluster start {opened:.1f} s, assign {mapped:.1f} s; against this process: "
            f"{int((dask_labels != local[0]).sum())} labels differ, coordinates by at most "
            f"{float(np.abs(dask_coords - local[1]).max()):.2g}"
        )

    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
