"""The cluster stage on each CPU path: do the same vectors give the same neighbours, layouts and topics?

    nice -n 10 .venv/bin/python bench/cpu_cluster.py VECTORS [--first 5000] [--cpu Haswell-v4 ...]
        [--methods "umap-hdbscan,umap-hdbscan exact,leiden"] [--seed 1] [--work DIR]

VECTORS is a run folder whose embed stage has finished (its vectors read through the store) or
an ``.npy`` file of vectors; ``--first N`` keeps the first N (above ``EXACT_KNN_LIMIT``, 4,096,
the default's neighbours come from pynndescent). Each method's fit (``pipeline.cluster.fit``:
the neighbour graph the method uses, then ``cluster_papers`` with the default settings but
``cluster.method``; ``umap-hdbscan exact``: the default with the exact neighbours of
``neighbours.cosine_knn`` at any size) runs in a child process on these paths:

- ``native``: this CPU (numpy, OpenBLAS and numba pick their kernels for it), and ``native again``,
  a second process: what one machine promises;
- on an AVX-512 CPU, ``native, numba haswell``: numba compiling for the emulated AVX2 CPU's LLVM
  target (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` as QEMU reports them; ``haswell`` without
  QEMU), numpy and OpenBLAS as they are: numba's share alone; ``native, AVX2 numpy and BLAS``:
  numpy and OpenBLAS forced to their AVX2 kernels (``NPY_DISABLE_CPU_FEATURES``,
  ``OPENBLAS_CORETYPE=Haswell``), numba as it is: their share alone; and ``native, AVX2 kernels``:
  both, a fast stand-in for an AVX2 CPU (compiled C, Cython and glibc run as they are). The
  haswell paths write numba's cache that the emulated Haswell-v4 path then reads (the same target,
  so the same machine code; umap-learn's uncached functions it compiles itself);
- ``<cpu>``: the whole process under ``qemu-x86_64 -cpu <cpu>`` (Haswell-v4: AVX2 and FMA, no
  AVX-512), when QEMU is installed. Emulation checks which numbers come out, never how fast.

Columns, each path against ``native``: the share of papers whose neighbour list (indices, in
order) is identical and the largest distance difference; the largest coordinate difference of
the reduced vectors HDBSCAN sees (5-D; for leiden the map) and of the 2-D map; topics (HDBSCAN's
clusters or Leiden's, before the label stage), outlier share, ARI to native (outliers as one
group) and whether the topics are identical; the child's wall and CPU seconds for the fit (emulated: meaningless).

Measured 2026-12-07 on an AMD EPYC (znver4: avx2, avx512f, avx512_vnni), seed 1, the first 5,000
(and 4,000) papers of arxiv-daily-cs embedded by the default int8 model; load 11-27 on 2 shared
cores, so the emulated path (~5% of a core each) could not finish and is not in the table:

| papers | method | path | same kNN lists | max dist diff | max diff 5-D | max diff map | topics | ARI to native |
|---|---|---|---|---|---|---|---|---|
| 5,000 | umap-hdbscan | native again | 100% | 0 | 0 | 0 | 52 | 1.000 (identical) |
| 5,000 | umap-hdbscan | numba haswell | 100% | 1.5e-07 | 9.21 | 7.42 | 48 | 0.583 |
| 5,000 | umap-hdbscan | AVX2 numpy and BLAS | 100% | 0 | 0 | 0 | 52 | 0.997 |
| 5,000 | umap-hdbscan | AVX2 kernels | 100% | 1.5e-07 | 9.21 | 7.42 | 49 | 0.594 |
| 5,000 | umap-hdbscan exact | native again | 100% | 0 | 0 | 0 | 54 | 1.000 (identical) |
| 5,000 | umap-hdbscan exact | numba haswell | 100% | 0 | 4.54 | 0 | 59 | 0.764 |
| 5,000 | umap-hdbscan exact | AVX2 numpy and BLAS | 100% | 0 | 0 | 0 | 54 | 0.995 |
| 5,000 | umap-hdbscan exact | AVX2 kernels | 100% | 0 | 4.54 | 0 | 60 | 0.763 |
| 5,000 | leiden | each of the four paths above | 100% | 0 | 0 | 0 | 37 | 1.000 (identical) |
| 4,000 | umap-hdbscan (exact kNN) | native again | 100% | 0 | 0 | 0 | 44 | 1.000 (identical) |
| 4,000 | umap-hdbscan (exact kNN) | numba haswell | 100% | 0 | 2.42 | 0 | 43 | 0.865 |
| 4,000 | umap-hdbscan (exact kNN) | AVX2 numpy and BLAS | 100% | 0 | 0 | 0 | 42 | 0.969 |
| 4,000 | umap-hdbscan (exact kNN) | AVX2 kernels | 100% | 0 | 2.42 | 0 | 43 | 0.865 |

Three steps of the default follow the CPU: pynndescent's distances (numba, fastmath sums: the
same lists, other last bits); the 5-D UMAP optimisation compiled for haswell (the 2-D map, from
the same graph, stays identical); and HDBSCAN on identical 5-D input with numpy's AVX2 kernels
(hdbscan sorts its spanning tree with numpy's unstable ``argsort``, whose AVX-512 and AVX2 sorts
order equal weights differently; a stable sort is the same on both). Leiden is identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu_kernels import QEMU, QEMU_QUIET, chosen_paths  # noqa: E402
from pipeline.cluster.fit import EXACT_KNN_LIMIT  # noqa: E402

# "umap-hdbscan exact": the default with the exact neighbours at any size (EXACT_KNN_LIMIT raised).
METHODS = ("umap-hdbscan", "umap-hdbscan exact", "leiden")
# The emulated AVX2 CPU; on an AVX-512 CPU, these make numpy and OpenBLAS pick their AVX2 kernels natively.
AVX2_CPU = "Haswell-v4"
AVX2_LIBRARIES = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"}
PROBE = "import llvmlite.binding as ll; print(ll.get_host_cpu_name()); print(ll.get_host_cpu_features().flatten())"


def load_vectors(source: Path, first: int | None) -> np.ndarray:
    """The vectors of a run folder (its finished embed stage) or of an .npy file, the first ``first`` of them."""
    if source.suffix == ".npy":
        vectors = np.load(source)
    else:
        from pipeline.stages import STAGE_NAMES
        from pipeline.store import ArtifactStore

        store = ArtifactStore(source, source.parent / ".cache", STAGE_NAMES)
        if store.finished("embed") is None:
            sys.exit(f"bench: {source} has no finished embed stage: run its config with --until embed first")
        vectors = store.read_array("embed", "embeddings.npy")
    return np.ascontiguousarray(vectors[:first], dtype=np.float32)


def fit_child(vectors_path: Path, method: str, seed: int, out: Path) -> None:
    """In the child: the method's neighbour graph and ``cluster_papers``; write the arrays and what the process saw."""
    from numba.core import config as numba_config

    from pipeline.cluster import fit
    from pipeline.config import ClusterConfig
    from tests.test_vector_guard import process_cpu_features

    vectors = np.load(vectors_path)
    if method == "umap-hdbscan exact":
        fit.EXACT_KNN_LIMIT = vectors.shape[0]
    # The stage computes its neighbour graph once: keep what it returns (leiden's exact graph, else UMAP's).
    search = "exact_neighbours" if method == "leiden" else "_nearest_neighbours"
    graph: list[tuple[np.ndarray, np.ndarray]] = []
    original = getattr(fit, search)

    def kept(*args: object) -> tuple[np.ndarray, np.ndarray]:
        graph.append(original(*args))
        return graph[-1]

    setattr(fit, search, kept)
    stage_method: Literal["umap-hdbscan", "leiden"] = "leiden" if method == "leiden" else "umap-hdbscan"
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fit.cluster_papers(vectors, ClusterConfig(method=stage_method), seed, parallel_layout=False)
    seconds = [time.perf_counter() - started, time.process_time() - cpu_started]
    (indices, distances), *_ = graph
    import llvmlite.binding as ll
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from threadpoolctl import threadpool_info

    target = getattr(numba_config, "CPU_NAME", None) or ll.get_host_cpu_name()
    dispatch = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    blas = sorted({f"{pool['internal_api']} {pool.get('architecture', '?')}" for pool in threadpool_info()})
    facts = f"{process_cpu_features()}; numpy dispatches {', '.join(dispatch) or 'baseline only'}; "
    facts += f"{', '.join(blas)}; numba compiles for {target}"
    np.savez(
        out,
        indices=indices,
        distances=distances,
        reduced=result.reduced,
        layout=result.layout,
        labels=result.labels,
        seconds=np.array(seconds),
        facts=np.array(facts),
    )


def numba_target(cpu: str) -> dict[str, str]:
    """``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` for the LLVM target that QEMU's ``cpu`` reports."""
    probe = subprocess.run(
        [QEMU, "-cpu", qemu_cpu(cpu), sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    )
    name, features = probe.stdout.split()
    return {"NUMBA_CPU_NAME": name, "NUMBA_CPU_FEATURES": features}


def qemu_cpu(cpu: str) -> str:
    return cpu + (QEMU_QUIET if cpu.startswith("Haswell") else "")


def run_path(label: str, prefix: list[str], env: dict[str, str], vectors: Path, method: str, seed: int, work: Path):
    """Run one child (unless ``work`` has its results already, from an earlier run); its saved arrays."""
    out = work / f"{method}-{label}.npz".replace(" ", "_").replace(",", "")
    if out.is_file():
        print(f"  {method} {label}: kept from an earlier run ({out})", flush=True)
    else:
        command = [*prefix, sys.executable, __file__, "--child", str(out), str(vectors), method, str(seed)]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **env})
        print(f"  {method} {label}: {time.perf_counter() - started:.0f} s", flush=True)
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


def table_row(path: str, method: str, saved: dict, native: dict) -> str:
    from sklearn.metrics import adjusted_rand_score

    same_lists = float((saved["indices"] == native["indices"]).all(axis=1).mean())
    distance = float(np.abs(saved["distances"].astype(np.float64) - native["distances"]).max())
    reduced = float(np.abs(saved["reduced"].astype(np.float64) - native["reduced"]).max())
    layout = float(np.abs(saved["layout"].astype(np.float64) - native["layout"]).max())
    labels = saved["labels"]
    wall, cpu = np.broadcast_to(saved["seconds"], 2)
    topics = int(labels.max()) + 1
    ari = adjusted_rand_score(native["labels"], labels)
    identical = "yes" if np.array_equal(labels, native["labels"]) else "no"
    return (
        f"| {method} | {path} | {same_lists:.1%} | {distance:.1e} | {reduced:.2e} | {layout:.2e} | {topics} "
        f"| {float((labels < 0).mean()):.1%} | {ari:.3f} | {identical} | {wall:.0f} / {cpu:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "vectors", type=Path, nargs="?", help="a run folder with a finished embed stage, or an .npy file"
    )
    parser.add_argument("--first", type=int, default=5000, help="keep the first N vectors (default 5000)")
    parser.add_argument("--cpu", nargs="*", default=[AVX2_CPU], help="QEMU CPU models to emulate (none: native)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the vectors and results, kept ones reused (default: temp)"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fit_child(args.vectors, args.rest[0], int(args.rest[1]), args.child)
        return
    if args.vectors is None:
        parser.error("VECTORS is required")
    methods, cpus, work = chosen_paths(parser, args.methods, METHODS, "methods", args.cpu, args.work, "cpu-cluster-")
    vectors = load_vectors(args.vectors, args.first)
    if vectors.shape[0] <= EXACT_KNN_LIMIT:
        print(
            f"note: {vectors.shape[0]} papers: the default's neighbours are exact (pynndescent above {EXACT_KNN_LIMIT})"
        )
    vectors_path = work / "vectors.npy"
    np.save(vectors_path, vectors)
    from pipeline.embed.models import user_cache_dir

    native_cache = {"NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(user_cache_dir() / "numba"))}
    paths: list[tuple[str, list[str], dict[str, str]]] = [
        ("native", [], native_cache),
        ("native again", [], native_cache),
    ]
    from numpy._core._multiarray_umath import __cpu_features__

    haswell_cache = {"NUMBA_CACHE_DIR": str(work / "numba-haswell")}
    if __cpu_features__.get("AVX512F"):
        target = numba_target(AVX2_CPU) if shutil.which(QEMU) else {"NUMBA_CPU_NAME": "haswell"}
        paths.append(("native, numba haswell", [], haswell_cache | target))
        paths.append(("native, AVX2 numpy and BLAS", [], native_cache | AVX2_LIBRARIES))
        paths.append(("native, AVX2 kernels", [], haswell_cache | target | AVX2_LIBRARIES))
    for cpu in cpus:
        cache = haswell_cache if cpu == AVX2_CPU else {"NUMBA_CACHE_DIR": str(work / f"numba-{cpu}")}
        paths.append((cpu, [QEMU, "-cpu", qemu_cpu(cpu)], cache))
    print(f"{vectors.shape[0]} vectors of {vectors.shape[1]} dimensions, seed {args.seed}; results in {work}")
    rows, facts = [], {}
    for method in methods:
        runs = {
            label: run_path(label, prefix, env, vectors_path, method, args.seed, work) for label, prefix, env in paths
        }
        rows += [table_row(label, method, saved, runs["native"]) for label, saved in runs.items()]
        facts.update({label: str(saved["facts"]) for label, saved in runs.items()})
    header = "| method | path | same kNN lists | max dist diff | max diff reduced | max diff map | topics | outliers"
    print(header + " | ARI to native | same topics | s wall / CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for label, fact in facts.items():
        print(f"{label}: {fact}")


if __name__ == "__main__":
    main()
