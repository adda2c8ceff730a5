"""Whether topic names tell the topics apart, audited; prints a table (run it before and after a change).

    .venv/bin/python bench/names.py [--corpora ../shared/corpora] [--daily 10000] [--work outputs/bench/names]

Runs the pipeline up to the cluster stage on the seed pages (data/samples), arxiv-kaggle-2000
and the first ``--daily`` papers of arxiv-daily-cs (skipping a corpus that is absent, and
saying so; ``--only`` picks some), then labels each run with this package's names and checks them:

- nearest: the share of topics whose name's vector (the run's embedding backend) is nearer to
  its own topic's centroid than to any other (``audit.centroid_ranks``);
- fragments: names with a part the texts continue with one same word in most of its uses
  ("Multimodal large": ``audit.is_fragment``);
- twin topics / twin groups: topics (coarse groups) whose head phrase another one has too
  ("Agents" and "Agents, environments": ``audit.twins``); repeats: topics named by their group's
  head phrase alone;
- generic: one-word names not specific to their topic in the pile (``audit.generic_names``);
- as ``python -m pipeline evaluate`` does (``pipeline.label.audit``): main-phrase coverage
  (mean, min, share under 0.2), median lift, share of topics with lift >= 3, names with a fault,
  and the coverage of the coarse groups' names; NPMI and diversity of the keywords.

``--show`` prints every topic's name, coverage, faults and group.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config  # noqa: E402
from pipeline.embed import load_backend  # noqa: E402
from pipeline.label import label_topics  # noqa: E402
from pipeline.label.audit import (  # noqa: E402
    centroid_ranks,
    generic_names,
    head_phrase,
    is_fragment,
    texts_name_audit,
    twins,
)
from pipeline.label.geometry import centroids_of  # noqa: E402
from pipeline.label.phrases import phrase_tokens  # noqa: E402
from pipeline.metrics import compute_metrics  # noqa: E402
from pipeline.runner import run_pipeline  # noqa: E402
from pipeline.schema import OUTLIER_TOPIC, paper_texts  # noqa: E402
from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402


def corpora_inputs(corpora: Path, daily: int, work: Path) -> dict[str, list[dict]]:
    """The inputs of each corpus that is present."""
    inputs = {"seed pages": [{"path": str(path)} for path in sorted((ROOT / "data" / "samples").glob("*.txt"))]}
    kaggle = corpora / "arxiv-kaggle-2000" / "arxiv_data.csv"
    if kaggle.is_file():
        inputs["arxiv-kaggle-2000"] = [{"path": str(kaggle), "format": "arxiv-snapshot"}]
    else:
        print(f"bench: {kaggle} is absent; arxiv-kaggle-2000 skipped")
    days = sorted(day for day in (corpora / "arxiv-daily-cs" / "data").glob("*.jsonl") if day.stat().st_size)
    if days:
        chosen, ids = [], set()
        for day in days:  # whole days, until `daily` unique papers (the first days repeat some)
            chosen.append(day)
            ids.update(json.loads(line)["id"] for line in day.open(encoding="utf-8") if line.strip())
            if len(ids) >= daily:
                break
        inputs[f"arxiv-daily-cs {daily // 1000}k"] = [{"path": str(day), "format": "arxiv-daily"} for day in chosen]
    else:
        print(f"bench: {corpora / 'arxiv-daily-cs'} is absent; arxiv-daily-cs skipped")
    return inputs


def group_audit(
    papers: pd.DataFrame, topics: pd.DataFrame, assignments: pd.DataFrame, names: dict
) -> tuple[float, int]:
    """Mean main-phrase coverage of the coarse groups' names over the groups' papers, and their faulty names."""
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    group_of = dict(zip(real["topic"], real["coarse_topic"], strict=True))
    per_paper = np.array([group_of.get(t, OUTLIER_TOPIC) for t in assignments["topic"]])
    groups = pd.DataFrame({"topic": sorted(set(group_of.values()))})
    groups["name"] = [names[group] for group in groups["topic"]]
    audit = texts_name_audit(papers, groups, per_paper)
    return audit["name_coverage_mean"], audit["name_faults"]


def name_checks(papers, topics, assignments, encode, embeddings) -> dict:
    """The checks of issue 30: nearest centroid, fragments, twins, repeats of the group's name, generic words."""
    tokens = phrase_tokens(papers["title"].astype(str).tolist(), papers["abstract"].astype(str).tolist())
    per_paper = assignments["topic"].to_numpy()
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    names = dict(zip(real["topic"].astype(int), real["name"].astype(str), strict=True))
    ranks = centroid_ranks(encode, names, centroids_of(embeddings, per_paper))
    fragments = [t for t, name in names.items() if any(is_fragment(tokens, part) for part in name.split(", "))]
    groups = dict(zip(real["coarse_topic"], real["coarse_name"], strict=True))
    members = real.groupby("coarse_topic")["topic"].count()
    repeats = [
        t for t, g in zip(real["topic"], real["coarse_topic"], strict=True)
        if members[g] > 1 and "," not in names[t] and head_phrase(names[t]) == head_phrase(groups[g])
    ]  # fmt: skip
    return {
        "nearest": float(np.mean([rank == 1 for rank in ranks.values()])) if ranks else float("nan"),
        "fragments": len(fragments),
        "twin topics": len(twins(names)),
        "twin groups": len(twins(groups)),
        "repeats": len(repeats),
        "generic": len(generic_names(tokens, per_paper, names)),
    }


def audit_row(papers, topics, assignments, metrics, seconds) -> dict:
    audit = texts_name_audit(papers, topics, assignments["topic"].to_numpy())
    lifts = [row["lift"] for row in audit["name_audit"]]
    groups = dict(zip(topics["coarse_topic"], topics["coarse_name"], strict=True))
    coverage, group_faults = group_audit(papers, topics, assignments, groups)
    return {
        "coverage mean": audit["name_coverage_mean"],
        "coverage min": audit["name_coverage_min"],
        "under 0.2": audit["name_low_coverage_share"],
        "lift median": audit["name_lift_median"],
        "lift>=3": float(np.mean(np.array(lifts) >= 3)),
        "faulty": audit["name_faults"],
        "group coverage": coverage,
        "faulty groups": group_faults,
        "npmi": metrics["npmi"],
        "diversity": metrics["diversity"],
        "label s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--daily", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench" / "names")
    parser.add_argument("--only", nargs="*", help="corpora to run, by the start of their name (seed, arxiv-kaggle...)")
    parser.add_argument("--show", action="store_true", help="print every topic's name, coverage, faults and group")
    parser.add_argument("--json", type=Path, help="also write the table and the names here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    table, shown = [], {}
    for corpus, inputs in corpora_inputs(args.corpora, args.daily, args.work).items():
        if args.only and not any(corpus.startswith(prefix) for prefix in args.only):
            continue
        slug = corpus.replace(" ", "-")
        path = args.work / f"{slug}.yaml"
        path.write_text(yaml.safe_dump({"name": slug, "output_dir": str(args.work), "inputs": inputs}))
        config = load_config(path)
        run_pipeline(config, until="cluster")
        store = ArtifactStore(args.work / slug, config.cache_dir, STAGE_NAMES)
        papers = store.read_table("parse", "papers.parquet")
        stored = [("embed", "embeddings.npy"), ("cluster", "labels.npy"), ("cluster", "layout.npy")]
        arrays = [store.read_array(stage, name) for stage, name in stored]
        started = time.perf_counter()
        encode = load_backend(config.embed).encode
        result = label_topics(papers, *arrays, config.label, encode, seed=config.seed)
        seconds = time.perf_counter() - started
        topics, assignments = result.topics, result.assignments
        labels = papers["label"].tolist() if (papers["label"] != "").any() else None
        words = {int(row.topic): list(row.keywords) for row in topics.itertuples()}
        metrics = compute_metrics(paper_texts(papers), assignments["topic"].tolist(), words, labels)
        row = name_checks(papers, topics, assignments, encode, arrays[0])
        row |= audit_row(papers, topics, assignments, metrics, seconds)
        table.append({"corpus": corpus, "papers": len(papers), "topics": len(words) - (OUTLIER_TOPIC in words), **row})
        shown[corpus] = [
            {"topic": int(t), "size": int(s), "name": n, "coverage": c, "faults": f, "group": g}
            for t, s, n, c, f, g in zip(
                topics["topic"], topics["size"], topics["name"], topics["name_coverage"], topics["name_faults"],
                topics["coarse_name"], strict=True,
            )
        ]  # fmt: skip
    frame = pd.DataFrame(table)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(frame.to_string(index=False))
    if args.show:
        for corpus, rows in shown.items():
            print(f"\n{corpus}")
            for row in rows:
                print("  " + " | ".join(f"{key} {value}" for key, value in row.items()))
    if args.json:
        args.json.write_text(json.dumps({"table": table, "names": shown}, indent=1, default=str))


if __name__ == "__main__":
    main()
