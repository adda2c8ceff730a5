"""papertopics against plain BERTopic on the same arXiv papers, in one run; prints a table.

    .venv/bin/python bench/compare_bertopic.py --sizes 10000 full kaggle [--modes quality preview]

Sizes: a number N takes the first daily files of arxiv-daily-cs holding at least N listing
rows (repeats merged, so fewer unique papers), ``full`` takes all of them, ``kaggle`` takes
arxiv-kaggle-2000. For each size it runs, each in a fresh process so that peak memory is its own:
1. papertopics cold (empty output folder: no stage or embedding cache; numba's compile
   cache and the built models are kept, as on any machine that ran papertopics once),
   per-stage seconds from the manifest;
2. papertopics again with nothing changed, with a label setting changed, and (full size)
   with one more day of papers added to the cached run;
3. plain BERTopic with its documented defaults on the same papers (bench/plain_bertopic.py):
   sentence-transformers fp32 embeddings, UMAP, HDBSCAN(min_cluster_size=10), c-TF-IDF,
   ``visualize_documents``. At full size its embedding time is measured on a sample of
   2,000 texts and scaled (marked in the table); it then clusters papertopics' own vectors
   of the first mode (marked), or with ``--reference-vectors`` the very vectors it would have
   computed, from a cache filled once per machine (``plain_bertopic.py
   --fill-reference-cache``, about 50 minutes; filled here when missing);
4. below full size, plain BERTopic on papertopics' own embeddings (first mode) too: the two
   systems' clustering and labelling compared on the same vectors.

Reads ../shared/corpora; says so and exits when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sklearn.metrics import normalized_mutual_info_score

from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "arxiv-daily-cs" / "data"
KAGGLE = ROOT.parent / "shared" / "corpora" / "arxiv-kaggle-2000" / "arxiv_data.csv"
WORK = ROOT / "outputs" / "bench"
REFERENCE_CACHE = ROOT / "outputs" / ".cache"
PLAIN_EMBED_SAMPLE = 2000


def daily_files() -> list[Path]:
    files = sorted(path for path in CORPUS.glob("*.jsonl") if path.stat().st_size > 0)
    if not files:
        sys.exit(f"bench: {CORPUS} is absent or empty: the shared corpora are needed for this benchmark")
    return files


def files_for(size: str) -> list[Path]:
    """The first daily files holding at least `size` lines (all files for 'full'), or the kaggle CSV."""
    if size == "kaggle":
        if not KAGGLE.is_file():
            sys.exit(f"bench: {KAGGLE} is absent: the shared corpora are needed for this benchmark")
        return [KAGGLE]
    files = daily_files()
    if size == "full":
        return files
    chosen, lines = [], 0
    for path in files:
        chosen.append(path)
        lines += sum(1 for _ in path.open(encoding="utf-8"))
        if lines >= int(size):
            break
    return chosen


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of a command run in its own process."""
    # numba's compile cache is per machine, not per run: share the project's.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(ROOT / "outputs" / ".cache" / "numba")}
    start = time.perf_counter()
    completed = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], cwd=ROOT, capture_output=True, text=True, check=False, env=env
    )
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    peak_kb = int(completed.stderr.strip().splitlines()[-1])
    return seconds, peak_kb / 1024


def write_config(name: str, files: list[Path], extra: dict | None = None) -> Path:
    config = {
        "name": name,
        "output_dir": str(WORK / name),
        "inputs": [
            {"path": str(path), "format": "arxiv-snapshot" if path == KAGGLE else "arxiv-daily"} for path in files
        ],
        **(extra or {}),
    }
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def papertopics_quality(run_dir: Path) -> dict:
    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    papers = store.read_table("parse", "papers.parquet")
    assignments = store.read_table("label", "assignments.parquet")
    topics = assignments["topic"].to_numpy()
    metrics = store.read_json("label", "metrics.json")
    return {
        "papers": len(papers),
        "n_topics": len(set(topics.tolist()) - {-1}),
        "outlier_share": float((topics == -1).mean()),
        "nmi": float(normalized_mutual_info_score(papers["label"], topics)),
        "npmi": metrics["npmi"],
        "diversity": metrics["diversity"],
    }


def computed_stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds of the stages the last run computed (reused ones are left out)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {stage: info["seconds"] for stage, info in manifest["stages"].items() if info["status"] == "computed"}


def bench_size(size: str, preview: bool, plain: bool = True, reference_vectors: bool = False) -> list[dict]:
    rows = []
    files = files_for(size)
    name = f"pt-{size}" + ("-preview" if preview else "")
    shutil.rmtree(WORK / name, ignore_errors=True)
    # Built models (ONNX export, model2vec distillation) are made once per machine; a cold run
    # here has no stage or embedding cache, but it may use them, as it may use numba's cache.
    built = ROOT / "outputs" / ".cache" / "models"
    if built.is_dir():
        shutil.copytree(built, WORK / name / ".cache" / "models")
    extra = {"embed": {"backend": "model2vec"}} if preview else {}
    held_back = files[-1] if size == "full" else None
    cold_files = files[:-1] if held_back else files
    config = write_config(name, cold_files, extra)
    python = sys.executable
    seconds, peak = timed([python, "-m", "pipeline", "run", str(config)])
    run_dir = WORK / name / name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stage_seconds = {stage: info["seconds"] for stage, info in manifest["stages"].items()}
    quality = papertopics_quality(run_dir)
    mode = "preview" if preview else "quality"
    rows.append({"system": f"papertopics ({mode}), cold", "size": quality["papers"], "wall_s": seconds,
                 "peak_mb": peak, **stage_seconds, **quality})  # fmt: skip
    seconds, peak = timed([python, "-m", "pipeline", "run", str(config)])
    rows.append(
        {"system": "papertopics, nothing changed", "size": quality["papers"], "wall_s": seconds, "peak_mb": peak}
    )
    changed = write_config(name, cold_files, {**extra, "label": {"n_keywords": 8}})
    seconds, peak = timed([python, "-m", "pipeline", "run", str(changed)])
    rows.append({"system": "papertopics, label setting changed", "size": quality["papers"], "wall_s": seconds,
                 "peak_mb": peak, **computed_stage_seconds(run_dir)})  # fmt: skip
    if held_back is not None:
        grown = write_config(name, files, {**extra, "label": {"n_keywords": 8}})
        seconds, peak = timed([python, "-m", "pipeline", "run", str(grown)])
        grown_quality = papertopics_quality(run_dir)
        grown_seconds = computed_stage_seconds(run_dir)
        rows.append({"system": f"papertopics, +1 day ({held_back.stem})", "size": grown_quality["papers"],
                     "wall_s": seconds, "peak_mb": peak, **grown_seconds, **grown_quality})  # fmt: skip
    if preview and not plain:
        return rows

    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    papers_path = store.stage_dir("parse") / "papers.parquet"  # plain BERTopic reads them in its own process
    own_vectors = store.stage_dir("embed") / "embeddings.npy"
    if size == "full" and not reference_vectors:
        # Plain BERTopic's own vectors would cost it about 50 minutes of embedding here: its embedding
        # time is scaled from a sample, and it clusters papertopics' vectors of the same papers.
        rows.append(plain_row(size, f"plain-{size}", papers_path, quality["papers"], own_embeddings=True,
                              embeddings=own_vectors, mode=mode))  # fmt: skip
        return rows
    rows.append(plain_row(size, f"plain-{size}", papers_path, quality["papers"], own_embeddings=True))
    rows.append(
        plain_row(size, f"plain-{size}-same", papers_path, quality["papers"], own_embeddings=False,
                  embeddings=own_vectors, mode=mode)
    )  # fmt: skip
    return rows


def plain_row(
    size: str,
    name: str,
    papers: Path,
    n_papers: int,
    own_embeddings: bool,
    embeddings: Path | None = None,
    mode: str = "",
) -> dict:
    """One run of bench/plain_bertopic.py as a table row."""
    result_path = WORK / f"{name}.json"
    command = [sys.executable, str(ROOT / "bench" / "plain_bertopic.py"), str(papers), str(result_path)]
    if not own_embeddings:
        command += ["--embeddings", str(embeddings)]
    elif size == "full":
        command += ["--embed-sample", str(PLAIN_EMBED_SAMPLE)]
        command += ["--embeddings", str(embeddings)] if embeddings else ["--reference-cache", str(REFERENCE_CACHE)]
    seconds, peak = timed(command)
    plain = json.loads(result_path.read_text())
    if own_embeddings:
        system = "plain BERTopic" + (f" (embed scaled from {PLAIN_EMBED_SAMPLE})" if plain["embed_scaled_from_sample"]
                                     else "")  # fmt: skip
        if embeddings:
            system += f", clustering papertopics' {mode} vectors"
    else:
        system = f"plain BERTopic on papertopics' {mode} embeddings (no embed step)"
    return {
        "system": system,
        "size": n_papers,
        # Scaled: the time it would have taken (the sample, not the cache read, is what ran).
        "wall_s": sum(plain["timings"].values()) if plain["embed_scaled_from_sample"] else seconds,
        "peak_mb": peak,
        **plain["timings"],
        "n_topics": plain["n_topics"], "outlier_share": plain["outlier_share"], "nmi": plain["nmi"],
        "npmi": plain["npmi"], "diversity": plain["diversity"],
    }  # fmt: skip


def print_table(rows: list[dict]) -> None:
    columns = ["corpus", "system", "size", "wall_s", "peak_mb", "parse", "embed", "cluster", "label", "report",
               "umap+hdbscan+c-tf-idf", "visualize_documents", "n_topics", "outlier_share", "nmi", "npmi",
               "diversity"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            if isinstance(value, float):
                value = f"{value:.3f}" if column in ("outlier_share", "nmi", "npmi", "diversity") else f"{value:.1f}"
            cells.append(str(value))
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["10000"], help="listing rows of arxiv-daily-cs (N or 'full'), or 'kaggle'"
    )
    parser.add_argument(
        "--modes", nargs="+", default=["quality", "preview"], choices=["quality", "preview"],
        help="papertopics embedding modes to time; plain BERTopic runs after the first mode",
    )  # fmt: skip
    parser.add_argument(
        "--reference-vectors", action="store_true",
        help="at full size, plain BERTopic clusters its own fp32 vectors (a cache filled once: ~50 min) instead of "
        "papertopics' vectors",
    )  # fmt: skip
    args = parser.parse_args()
    daily_files()
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        corpus = "arxiv-kaggle-2000" if size == "kaggle" else "arxiv-daily-cs"
        for index, mode in enumerate(args.modes):
            rows += [
                {"corpus": corpus, **row}
                for row in bench_size(
                    size, preview=mode == "preview", plain=index == 0, reference_vectors=args.reference_vectors
                )
            ]
        print_table(rows)
        sys.stdout.flush()
    (WORK / "compare.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
