"""How much a run's topics hinge on the seed: the cluster stage's clustering redone with other seeds.

``python -m pipeline evaluate RUN --stability N`` clusters the run's stored vectors again with
the N seeds after the run's own (seed + 1 ... seed + N), with the run's cluster settings and no
guide (as a fresh run would), and compares every pair of the N + 1 clusterings, the run's own
labels included, by the adjusted Rand index (outliers counted as one more group, as
``pipeline.agreement`` does for labels: 1 = the same grouping, 0 = chance). The result is kept
in the run folder (``STABILITY_FILE``) with the hash of the clustering it measured, and the
dashboard shows it while that clustering is the run's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import ClusterConfig
from pipeline.errors import InputError
from pipeline.report.stability_card import STABILITY_FILE

MAX_STABILITY_SEEDS = 20


def pairwise_ari(clusterings: list[np.ndarray]) -> list[float]:
    """ARI of every pair of clusterings of the same papers (each (n_papers,) int, -1 = outlier), in pair order."""
    from pipeline.agreement import label_agreement

    values = []
    for first, second in itertools.combinations(clusterings, 2):
        ari = label_agreement(first.tolist(), [str(label) for label in second.tolist()])["ari"]
        values.append(float("nan") if ari is None else float(ari))
    return values


def seed_stability(
    embeddings: np.ndarray,
    labels: np.ndarray,
    config: ClusterConfig,
    seed: int,
    n_seeds: int,
    outlier_percentile: float | None,
    cluster: Callable[[np.ndarray, ClusterConfig, int], np.ndarray] | None = None,
) -> dict[str, Any]:
    """The run's clustering beside ``n_seeds`` others of the same vectors with seeds seed + 1 ... seed + n_seeds.

    embeddings: ndarray of shape (n_papers, dim); labels: the run's clusters, ndarray (n_papers,),
    -1 = outlier. ``cluster`` (vectors, settings, seed) -> labels defaults to the cluster stage's
    own fit (``pipeline.cluster.sample_fit.fit_on_sample`` on this process, unguided). Returns a JSON-ready
    dict: the seeds, each clustering's topic count, the pairwise ARIs with their minimum and mean.
    """
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or not 1 <= n_seeds <= MAX_STABILITY_SEEDS:
        raise ValueError(f"--stability takes 1 to {MAX_STABILITY_SEEDS} other seeds, not {n_seeds!r}")
    if labels.shape != (embeddings.shape[0],):
        raise ValueError(f"{embeddings.shape[0]} vectors but labels of shape {labels.shape}")
    if cluster is None:
        cluster = _stage_clustering(outlier_percentile)
    seeds = [seed + offset for offset in range(1, n_seeds + 1)]
    clusterings = [np.asarray(labels, dtype=np.int64)] + [cluster(embeddings, config, other) for other in seeds]
    counts = [len(set(found.tolist()) - {-1}) for found in clusterings]
    aris = pairwise_ari(clusterings)
    return {
        "seeds": [seed, *seeds],
        "n_topics": counts,
        "n_topics_min": min(counts),
        "n_topics_max": max(counts),
        "outlier_shares": [round(float((found < 0).mean()), 6) for found in clusterings],
        "ari_pairs": [round(value, 6) for value in aris],
        "ari_min": round(min(aris), 6),
        "ari_mean": round(float(np.mean(aris)), 6),
    }


def _stage_clustering(outlier_percentile: float | None) -> Callable[[np.ndarray, ClusterConfig, int], np.ndarray]:
    from pipeline.cluster.sample_fit import fit_on_sample
    from pipeline.engine import LocalEngine

    def cluster(embeddings: np.ndarray, config: ClusterConfig, seed: int) -> np.ndarray:
        return fit_on_sample(embeddings, config, seed, LocalEngine(), outlier_percentile).labels

    return cluster


def evaluate_stability(run_dir: Path, n_seeds: int) -> dict[str, Any]:
    """Measure a finished run's seed stability and keep it in the run folder (``STABILITY_FILE``).

    Reads the run's resolved config from its manifest.json, its vectors and its clusters;
    raises InputError when the folder holds no finished cluster stage.
    """
    from pipeline.config import parse_config
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore

    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    record = store.finished("cluster") if run_dir.is_dir() else None
    manifest = run_dir / "manifest.json"
    if record is None or store.finished("embed") is None or not manifest.is_file():
        raise InputError(f"{run_dir}: not a finished papertopics run (no finished cluster stage in it)")
    try:
        config = parse_config(json.loads(manifest.read_text(encoding="utf-8"))["config"], source=str(manifest))
    except (ValueError, KeyError) as exc:
        raise InputError(f"{manifest}: unreadable ({exc}); run the config again to rewrite it") from exc
    result = seed_stability(
        store.read_array("embed", "embeddings.npy"),
        store.read_array("cluster", "labels.npy"),
        config.cluster,
        config.seed,
        n_seeds,
        config.label.outlier_percentile,
    )
    result = {**result, "labels_sha256": record.output_hashes["labels.npy"]}
    store.write_evaluation(STABILITY_FILE, result)
    return result
