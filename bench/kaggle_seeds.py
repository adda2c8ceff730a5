"""Both systems over several seeds on arxiv-kaggle-2000, where one run says little; prints a table.

    .venv/bin/python bench/kaggle_seeds.py [--seeds 5]

Needs the cold quality run of ``bench/compare_bertopic.py --sizes kaggle`` (its papers and
papertopics' vectors, ``outputs/bench/pt-kaggle``). papertopics runs with ``seed: 1..N`` (its
cluster stage on the cached embeddings); plain BERTopic, whose UMAP is unseeded by default,
runs N times on its own fp32 vectors (``bench/plain_bertopic.py``, from the reference cache
filled here once) and N times on papertopics' vectors. Mean ± standard deviation per column.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from compare_bertopic import REFERENCE_CACHE, WORK, papertopics_quality, timed, write_config  # noqa: E402

from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

COLUMNS = ("nmi", "npmi", "diversity", "outlier_share", "n_topics")


def summary(rows: list[dict]) -> str:
    cells = []
    for column in COLUMNS:
        values = [row[column] for row in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}" if column != "n_topics" else
                     f"{statistics.mean(values):.0f} ({min(values)}–{max(values)})")  # fmt: skip
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    source = WORK / "pt-kaggle"
    store = ArtifactStore(source / "pt-kaggle", source / ".cache", STAGE_NAMES)
    papers = store.stage_dir("parse") / "papers.parquet"  # paths: plain_bertopic.py reads them in its own process
    vectors = store.stage_dir("embed") / "embeddings.npy"
    if not papers.is_file():
        sys.exit(f"bench: {papers} is missing: run bench/compare_bertopic.py --sizes kaggle first")
    plain = [sys.executable, str(ROOT / "bench" / "plain_bertopic.py"), str(papers)]
    subprocess.run([*plain, str(WORK / "seeds-fill.json"), "--fill-reference-cache", str(REFERENCE_CACHE)],
                   check=True, capture_output=True)  # fmt: skip
    rows: dict[str, list[dict]] = {"papertopics": [], "plain BERTopic, own vectors": [],
                                   "plain BERTopic, papertopics' vectors": []}  # fmt: skip
    inputs = yaml.safe_load((WORK / "pt-kaggle.yaml").read_text())["inputs"]
    for seed in range(1, args.seeds + 1):
        name = f"seeds-kaggle-{seed}"
        shutil.rmtree(WORK / name, ignore_errors=True)
        shutil.copytree(source / ".cache", WORK / name / ".cache")  # the same vectors: only clustering differs
        config = write_config(name, [Path(item["path"]) for item in inputs], {"seed": seed})
        timed([sys.executable, "-m", "pipeline", "run", str(config), "--until", "label"])
        rows["papertopics"].append(papertopics_quality(WORK / name / name))
        for system, extra in (("plain BERTopic, own vectors", ["--reference-cache", str(REFERENCE_CACHE)]),
                              ("plain BERTopic, papertopics' vectors", ["--embeddings", str(vectors)])):  # fmt: skip
            result = WORK / f"seeds-plain-{seed}.json"
            timed([*plain, str(result), *extra])
            rows[system].append(json.loads(result.read_text()))
    print(f"\narxiv-kaggle-2000, {args.seeds} runs each (mean ± sd)\n")
    print("| system | NMI | NPMI | diversity | outliers | topics |\n|---|---|---|---|---|---|")
    for system, results in rows.items():
        print(f"| {system} | {summary(results)} |")
    print("\nplain BERTopic scored on its first 10 words that are neither stop words nor abstract boilerplate:")
    for system, results in list(rows.items())[1:]:
        values = [row["npmi_without_boilerplate"] for row in results]
        shares = [row["boilerplate_share"] for row in results]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {system}: NPMI {statistics.mean(values):.3f} ± {spread:.3f}, "
              f"boilerplate {statistics.mean(shares):.1%} of its top-10 words")  # fmt: skip


if __name__ == "__main__":
    main()
