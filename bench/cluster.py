"""What each choice in the cluster stage costs, before and after, on one machine in one run; prints a table.

    .venv/bin/python bench/cluster.py RUN_DIR [--sample N]

RUN_DIR is a finished run (its ``02_embed/embeddings.npy`` is clustered), e.g.
``outputs/bench/pt-full/pt-full`` after ``bench/compare_bertopic.py --sizes full``. Rows:

- numba's compile cache: the cluster stage on 2,000 of the vectors in a fresh process with
  an empty ``NUMBA_CACHE_DIR`` (what every run paid before the cache) and in a fresh process
  with the cache warm (what a run pays now);
- the steps of ``pipeline.cluster.fit.cluster_papers``: the nearest-neighbour graph, UMAP to 5-D
  and to 2-D reusing it, and, for comparison, UMAP to 2-D building its own graph (what the
  second layout cost before the graph was shared);
- the whole ``cluster_papers`` with the 2-D map laid out in this process and in a spawned
  second process beside the 5-D layout and HDBSCAN (used from 20,000 papers), and whether
  the two give the same arrays;
- HDBSCAN: the ``hdbscan`` package (used) and ``fast_hdbscan`` when it is installed (first
  call, with its compilation, and a second call), with the adjusted Rand index between their
  clusterings.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

COMPILE_SAMPLE = 2000
_STAGE_ON_SAMPLE = """
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
start = time.perf_counter()
from pipeline.cluster.fit import cluster_papers
from pipeline.config import ClusterConfig
vectors = np.load({path!r})[:{n}]
cluster_papers(vectors, ClusterConfig(), seed=42)
print(time.perf_counter() - start)
"""


def stage_in_fresh_process(embeddings: Path, numba_cache: Path) -> float:
    """Seconds of imports + cluster_papers on COMPILE_SAMPLE vectors in a new interpreter."""
    code = _STAGE_ON_SAMPLE.format(root=str(ROOT), path=str(embeddings), n=COMPILE_SAMPLE)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sample", type=int, default=0, help="cluster only the first N vectors (0: all)")
    args = parser.parse_args()
    embeddings = (
        ArtifactStore(args.run_dir, args.run_dir.parent / ".cache", STAGE_NAMES).stage_dir("embed") / "embeddings.npy"
    )
    if not embeddings.is_file():
        print(f"{embeddings} is missing: give a finished run folder", file=sys.stderr)
        return 2
    rows: list[tuple[str, str]] = []

    with tempfile.TemporaryDirectory() as empty:
        cold = stage_in_fresh_process(embeddings, Path(empty))
    warm_cache = ROOT / "outputs" / ".cache" / "numba"
    stage_in_fresh_process(embeddings, warm_cache)  # fills the cache when this machine never ran the stage
    warm = stage_in_fresh_process(embeddings, warm_cache)
    rows += [
        (f"cluster stage on {COMPILE_SAMPLE:,} papers, fresh process, empty numba cache", f"{cold:.1f}"),
        (f"cluster stage on {COMPILE_SAMPLE:,} papers, fresh process, numba cache warm", f"{warm:.1f}"),
    ]

    from sklearn.metrics import adjusted_rand_score

    from pipeline.cluster.fit import (
        _nearest_neighbours,
        _umap,
        auto_min_cluster_size,
        auto_min_samples,
        hdbscan_labels,
        largest_cluster_allowed,
    )
    from pipeline.config import ClusterConfig

    vectors = np.load(embeddings)
    if args.sample:
        vectors = vectors[: args.sample]
    n = len(vectors)
    knn, knn_s = timed(_nearest_neighbours, vectors, 15, 42)
    reduced, umap5_s = timed(_umap, vectors, knn, 15, 5, 0.0, 42)
    _, umap2_s = timed(_umap, vectors, knn, 15, 2, 0.1, 42)
    _, umap2_own_s = timed(_umap_own_graph, vectors)
    rows += [
        (f"nearest-neighbour graph ({n:,} papers)", f"{knn_s:.1f}"),
        ("UMAP to 5-D on the shared graph", f"{umap5_s:.1f}"),
        ("UMAP to 2-D on the shared graph (used)", f"{umap2_s:.1f}"),
        ("UMAP to 2-D building its own graph (before)", f"{umap2_own_s:.1f}"),
    ]
    min_cluster_size = auto_min_cluster_size(n)
    max_cluster_size = largest_cluster_allowed(n, min_cluster_size, ClusterConfig().max_topic_share)
    labels, hdbscan_s = timed(hdbscan_labels, reduced, min_cluster_size, auto_min_samples(min_cluster_size),
                              max_cluster_size)  # fmt: skip
    rows.append((f"HDBSCAN, hdbscan package (used): {labels.max() + 1} clusters", f"{hdbscan_s:.1f}"))
    try:
        import fast_hdbscan
    except ImportError:
        rows.append(("HDBSCAN, fast_hdbscan", "not installed (pip install fast_hdbscan)"))
    else:
        model = fast_hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=auto_min_samples(min_cluster_size))
        fast, first_s = timed(model.fit_predict, reduced)
        _, again_s = timed(model.fit_predict, reduced)
        agreement = adjusted_rand_score(labels, fast)
        rows += [
            (f"HDBSCAN, fast_hdbscan, first call: {fast.max() + 1} clusters, ARI {agreement:.2f}", f"{first_s:.1f}"),
            ("HDBSCAN, fast_hdbscan, second call", f"{again_s:.1f}"),
        ]
    from pipeline.cluster.fit import cluster_papers
    from pipeline.config import ClusterConfig

    serial, serial_s = timed(cluster_papers, vectors, ClusterConfig(), 42, parallel_layout=False)
    beside, beside_s = timed(cluster_papers, vectors, ClusterConfig(), 42, parallel_layout=True)
    same = all(np.array_equal(getattr(serial, name), getattr(beside, name)) for name in ("labels", "reduced", "layout"))
    rows += [
        ("cluster_papers, 2-D map laid out after the 5-D layout (before)", f"{serial_s:.1f}"),
        (f"cluster_papers, 2-D map laid out in a second process (used; same arrays: {same})", f"{beside_s:.1f}"),
    ]
    print("| step | seconds |\n|---|---|")
    for step, seconds in rows:
        print(f"| {step} | {seconds} |")
    return 0


def _umap_own_graph(vectors: np.ndarray) -> np.ndarray:
    import warnings

    from umap import UMAP

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        reducer = UMAP(n_neighbors=15, n_components=2, min_dist=0.1, metric="cosine", random_state=42)
        return reducer.fit_transform(vectors)


if __name__ == "__main__":
    sys.exit(main())
