"""Keywords of a sampled label stage: from the sample's words, or from the term counts of every paper.

    .venv/bin/python bench/label_counts.py [--sample 20000] [--out /tmp/papertopics-label-counts]
        [--corpora ../shared/corpora] [--workers 2]

Runs the real arXiv CS papers (../shared/corpora/arxiv-daily-cs, 74,728 papers; the script
stops with a message when the folder is absent) up to the label stage in two fresh run folders
that share one cache (model2vec vectors, embedded once; ``engine: dask`` with ``--workers``
local workers; the same clusters in both), and compares the keywords three ways:

- ``all``: ``label.fit_sample: all``, every paper read (the reference);
- ``sample + all counts``: ``label.fit_sample: N``: names from a sample of N papers, keywords
  from the term counts of all papers, counted in parts on the workers and summed
  (``pipeline.label.class_counts``; what the label stage does above ``fit_sample``);
- ``sample only``: the keywords the same sample's own words give (``class_keywords`` of the
  sample's counts, computed here): what the stage gave before its counts were summed.

Prints, per way: the label stage's seconds (from the run's manifest; none for the third,
computed here), the share of topics whose 10 keywords are those of ``all`` in the same
order, and the mean overlap of their keyword sets with ``all``'s.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"


def run(config: Path, *args: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba-cache")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "run", str(config), *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def write_config(out: Path, corpora: Path, fit_sample: str | int, workers: int) -> Path:
    config = {
        "name": f"label-counts-{fit_sample}",
        "output_dir": str(out),
        "inputs": [{"path": str(corpora / "arxiv-daily-cs" / "data" / "*.jsonl"), "format": "arxiv-daily"}],
        "embed": {"backend": "model2vec"},
        "engine": {"kind": "dask", "workers": workers},
        "label": {"fit_sample": fit_sample},
    }
    path = out / f"label-counts-{fit_sample}.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    return path


def label_tables(run_dir: Path) -> tuple[pd.DataFrame, float]:
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore

    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return store.read_table("label", "topics.parquet"), float(manifest["stages"]["label"]["seconds"])


def sample_only_keywords(run_dir: Path, config_path: Path, sample: int) -> dict[int, list[str]]:
    """The keywords the sampled run's topics get from their sample's words alone, by the run's topic ids."""
    from pipeline.config import load_config
    from pipeline.engine import LocalEngine
    from pipeline.label import merged_clusters
    from pipeline.label.class_counts import class_keywords, counted_in_parts
    from pipeline.label.sample import stratified_rows
    from pipeline.schema import paper_texts
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore

    config = load_config(config_path)
    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    papers = store.read_table("parse", "papers.parquet")
    labels, _ = merged_clusters(
        store.read_array("cluster", "labels.npy"), store.read_array("embed", "embeddings.npy"), config.label
    )
    rows = stratified_rows(labels, sample, config.seed)
    texts = paper_texts(papers)
    counts, _ = counted_in_parts([texts[row] for row in rows.tolist()], labels[rows], config.label, LocalEngine())
    by_label = class_keywords(counts, config.label)
    # The run numbered its topics by size among all papers; each label's papers keep one topic.
    topic_of = store.read_table("label", "assignments.parquet")["topic"].to_numpy()
    pairs = dict(zip(labels.tolist(), topic_of.tolist(), strict=True))
    return {pairs[label]: [word for word, _ in words] for label, words in by_label.items()}


def agreement(reference: dict[int, list[str]], other: dict[int, list[str]]) -> tuple[float, float]:
    topics = sorted(topic for topic in reference if topic >= 0)
    same = np.mean([reference[topic] == other.get(topic) for topic in topics])
    overlap = np.mean([len(set(reference[topic]) & set(other.get(topic, []))) / max(len(reference[topic]), 1)
                       for topic in topics])  # fmt: skip
    return float(same), float(overlap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/papertopics-label-counts"))
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not (args.corpora / "arxiv-daily-cs").is_dir():
        sys.exit(f"label_counts: {args.corpora / 'arxiv-daily-cs'} is absent; this benchmark needs the real corpus")
    args.out.mkdir(parents=True, exist_ok=True)
    whole = write_config(args.out, args.corpora, "all", args.workers)
    sampled = write_config(args.out, args.corpora, args.sample, args.workers)
    tables, seconds, keywords = {}, {}, {}
    for name, config in (("all", whole), ("sample + all counts", sampled)):
        # A fresh run folder: a second run in the same folder would keep the first one's topic ids.
        run_dir = args.out / config.stem
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"{name}: {run(config, '--until', 'label'):.0f} s up to label", flush=True)
        tables[name], seconds[name] = label_tables(run_dir)
        keywords[name] = {int(row.topic): list(row.keywords) for row in tables[name].itertuples()}
    keywords["sample only"] = sample_only_keywords(run_dir, sampled, args.sample)
    names_kept = float(np.mean(tables["all"].set_index("topic")["name"] == tables["sample + all counts"]
                               .set_index("topic")["name"]))  # fmt: skip
    print(f"\n74,728 real papers, label.fit_sample {args.sample:,}, {args.workers} Dask workers\n")
    print("| keywords from | label stage | topics with the same 10 keywords as all | keyword overlap |")
    print("|---|---|---|---|")
    for name in ("all", "sample + all counts", "sample only"):
        same, overlap = agreement(keywords["all"], keywords[name])
        stage = f"{seconds[name]:.1f} s" if name in seconds else "-"
        print(f"| {name} | {stage} | {same:.1%} | {overlap:.1%} |")
    print(f"\nnames equal to the all-papers run's: {names_kept:.1%} of topics")


if __name__ == "__main__":
    main()
