"""The assignment of the papers outside the sample: before (PR #16's first version) and now; prints a table.

    .venv/bin/python bench/assign_speed.py [--rest 20000] [--dim 384] [--seed 0]

Synthetic unit vectors in 50 clusters (a cluster centre plus noise, so that neighbours are
meaningful and the top k is not a tie-fest); the sample's labels are the clusters with 10%
outliers, its layout 7 coordinates (2-D map + 5 reduced), k = 15, outlier_percentile = 5.
Both sides run in this process, one after the other, on the same vectors:

- before: the first version of ``assign_rest``, kept here verbatim in ``before_assign``: each
  block against the whole sample, ``np.argpartition`` on whole similarity rows, ``np.add.at``
  votes;
- now: ``pipeline.cluster.sample_fit.assign_rest``: at most ``ASSIGN_REFERENCE`` (20,000) reference
  papers, an exact top k from group maxima (``nearest_columns``), ``np.bincount`` votes.

Rows: a 20,000-paper sample (the reference cap changes nothing there: speed of the top k
alone) and a 100,000-paper sample (``fit_sample: auto`` above 100,000 papers: the cap too).
Columns: papers placed per second in one process, and that rate projected to the 900,000
papers outside the sample of a million (one process; workers divide it). Labels are compared
where the reference is the same (they must agree: the top k is exact either way, up to ties).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.cluster.sample_fit import ASSIGN_REFERENCE, OUTLIER, assign_rest, topic_bars  # noqa: E402

K, PERCENTILE, CLUSTERS = 15, 5.0, 50


def before_assign(sample, labels, layout, rest, k, percentile, block_elements=1 << 24):
    """The first version of assign_rest and _assign_block (commit before bench/assign_speed.py), verbatim in effect."""
    n_sample = sample.shape[0]
    k = max(1, min(k, n_sample))
    block_rows = max(1, block_elements // n_sample)
    labels = np.asarray(labels, dtype=np.int64)
    candidates, label_columns = np.unique(np.concatenate([[OUTLIER], labels]), return_inverse=True)
    label_columns = label_columns[1:]
    bars = topic_bars(sample, labels, percentile)
    out_labels = np.empty(len(rest), dtype=np.int64)
    positions = np.empty((len(rest), layout.shape[1]), dtype=np.float32)
    sample_t = np.ascontiguousarray(sample.T, dtype=np.float32)
    layout = np.asarray(layout, dtype=np.float64)
    for start in range(0, len(rest), block_rows):
        block = np.asarray(rest[start : start + block_rows], dtype=np.float32)
        similarity = block @ sample_t
        nearest = np.argpartition(similarity, n_sample - k, axis=1)[:, n_sample - k :]
        nearest_similarity = np.take_along_axis(similarity, nearest, axis=1)
        order = np.lexsort((nearest, -nearest_similarity))
        nearest = np.take_along_axis(nearest, order, axis=1)
        weights = np.clip(np.take_along_axis(nearest_similarity, order, axis=1), 1e-6, None).astype(np.float64)
        columns = label_columns[nearest]
        votes = np.zeros((len(block), len(candidates)), dtype=np.float64)
        np.add.at(votes, (np.repeat(np.arange(len(block)), k), columns.ravel()), weights.ravel())
        got = candidates[votes.argmax(axis=1)]
        to_centroids = block @ bars.centroids.T
        voted = np.flatnonzero(got != OUTLIER)
        column = np.searchsorted(bars.ids, got[voted])
        got[voted[to_centroids[voted, column] < bars.floors[column]]] = OUTLIER
        outliers = np.flatnonzero(got == OUTLIER)
        best = to_centroids[outliers].argmax(axis=1)
        accepted = to_centroids[outliers, best] >= bars.bars[best]
        got[outliers[accepted]] = bars.ids[best[accepted]]
        same = (candidates[columns] == got[:, None]) & (got[:, None] != OUTLIER)
        use = np.where(same.any(axis=1, keepdims=True), same, True)
        w = weights * use
        w /= w.sum(axis=1, keepdims=True)
        out_labels[start : start + len(block)] = got
        positions[start : start + len(block)] = np.einsum("bk,bkd->bd", w, layout[nearest])
    return out_labels, positions


def vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    cluster = rng.integers(0, len(centres), n)
    rows = centres[cluster] + rng.normal(0, 1.0, (n, centres.shape[1])).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), cluster


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", type=int, default=20_000, help="papers to place per row")
    parser.add_argument("--dim", type=int, default=384, help="vector dimensions (MiniLM 384, model2vec 256)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0, 1.0, (CLUSTERS, args.dim)).astype(np.float32)
    rest, _ = vectors(rng, centres, args.rest)
    load = os.getloadavg()[0]
    print(f"{args.rest:,} papers placed, {args.dim} dimensions, k={K}; load {load:.2f}, {os.cpu_count()} cores")
    print("| sample | version | reference | papers/s | 900k papers, one process | labels as before |")
    print("|---|---|---|---|---|---|")
    for n_sample in (20_000, 100_000):
        sample, cluster = vectors(rng, centres, n_sample)
        labels = np.where(rng.random(n_sample) < 0.1, OUTLIER, cluster)
        layout = rng.normal(size=(n_sample, 7)).astype(np.float32)
        (old, _), old_s = timed(before_assign, sample, labels, layout, rest, K, PERCENTILE)
        (new, _), new_s = timed(assign_rest, sample, labels, layout, rest, K, PERCENTILE)
        (full, _), full_s = timed(assign_rest, sample, labels, layout, rest, K, PERCENTILE, reference=n_sample)
        rows = [
            ("before", n_sample, old_s, "-"),
            ("now, no cap", n_sample, full_s, f"{(full == old).mean():.2%}"),
            ("now", min(n_sample, ASSIGN_REFERENCE), new_s, f"{(new == old).mean():.2%}"),
        ]
        for version, reference, seconds, same in rows:
            rate = args.rest / seconds
            projected = f"{900_000 / rate / 60:.1f} min"
            print(f"| {n_sample:,} | {version} | {reference:,} | {rate:,.0f} | {projected} | {same} |")


if __name__ == "__main__":
    main()
