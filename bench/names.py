"""Topic names before (c-TF-IDF key phrases) and after (the authors' phrases), audited; prints a table.

    .venv/bin/python bench/names.py [--corpora ../shared/corpora] [--daily 10000] [--work outputs/bench/names]

Runs the pipeline up to the cluster stage on the seed pages (data/samples), arxiv-kaggle-2000
and the first ``--daily`` papers of arxiv-daily-cs (skipping a corpus that is absent, and
saying so), then labels each run twice from the same clusters: the names this package builds
now, and the names built from the c-TF-IDF key phrases as before (``names.topic_name``, the
same rules and uniqueness loop as before). Both are audited as ``python -m pipeline evaluate``
does (``pipeline.label.audit``): main-phrase coverage (mean, min, share of topics under 0.2),
median lift, share of topics whose main phrase has lift >= 3, the names with a fault
(``audit.name_faults``: a part no paper writes, a fragment, a lowercased acronym, only generic
words; topics and groups), and the coverage of the coarse groups' names; NPMI and
diversity are computed on the keywords, which naming leaves alone.
``--show`` prints every topic's names before and after.
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
from pipeline.label import label_topics, term_counts_for  # noqa: E402
from pipeline.label.audit import texts_name_audit  # noqa: E402
from pipeline.label.keywords import ctfidf_keywords  # noqa: E402
from pipeline.label.names import topic_name, writing  # noqa: E402
from pipeline.metrics import compute_metrics  # noqa: E402
from pipeline.runner import run_pipeline  # noqa: E402
from pipeline.schema import OUTLIER_NAME, OUTLIER_TOPIC, paper_texts  # noqa: E402
from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402
from pipeline.terms import tokenize_texts  # noqa: E402


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


def keyword_names(papers: pd.DataFrame, topics: pd.DataFrame, assignments: pd.DataFrame, config) -> dict[int, str]:
    """The names as built before: c-TF-IDF key phrases completed from the texts, unique in the run."""
    tokens = tokenize_texts(paper_texts(papers))
    per_paper = assignments["topic"].to_numpy()
    _, keywords, group_words = ctfidf_keywords(term_counts_for(tokens, config), per_paper, config)
    names, taken = {OUTLIER_TOPIC: OUTLIER_NAME}, set()
    for topic in sorted(t for t in topics["topic"] if t != OUTLIER_TOPIC):
        words = [word for word, _ in keywords.get(topic, [])]
        write = writing(tokens, np.flatnonzero(per_paper == topic))
        name, extra = topic_name(words, config.name_phrases, *write) or f"Topic {topic}", config.name_phrases
        while name.casefold() in taken and extra < len(words):
            extra += 1
            name = topic_name(words, extra, *write) or name
        names[topic] = name if name.casefold() not in taken else f"{name} ({topic})"
        taken.add(names[topic].casefold())
    for group, members in topics[topics["topic"] != OUTLIER_TOPIC].groupby("coarse_topic"):
        leaves = sorted(members["topic"].tolist())
        rows = np.flatnonzero(np.isin(per_paper, leaves))
        name = topic_name(group_words(leaves), config.name_phrases, *writing(tokens, rows))
        names[("group", group)] = name or names[leaves[0]]
    return names


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


def audit_row(papers, topics, assignments, names, groups, metrics, seconds) -> dict:
    table = topics.assign(name=[names[t] for t in topics["topic"]])
    audit = texts_name_audit(papers, table, assignments["topic"].to_numpy())
    lifts = [row["lift"] for row in audit["name_audit"]]
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
    parser.add_argument("--show", action="store_true", help="print every topic's names before and after")
    parser.add_argument("--json", type=Path, help="also write the table and the names here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    table, shown = [], {}
    for corpus, inputs in corpora_inputs(args.corpora, args.daily, args.work).items():
        slug = corpus.replace(" ", "-")
        path = args.work / f"{slug}.yaml"
        path.write_text(yaml.safe_dump({"name": slug, "output_dir": str(args.work), "inputs": inputs}))
        config = load_config(path)
        run_pipeline(config, until="cluster")
        run = args.work / slug
        store = ArtifactStore(run, config.cache_dir, STAGE_NAMES)
        papers = store.read_table("parse", "papers.parquet")
        stored = [("embed", "embeddings.npy"), ("cluster", "labels.npy"), ("cluster", "layout.npy")]
        arrays = [store.read_array(stage, name) for stage, name in stored]
        started = time.perf_counter()
        result = label_topics(papers, *arrays, config.label, load_backend(config.embed).encode, seed=config.seed)
        seconds = time.perf_counter() - started
        topics, assignments = result.topics, result.assignments
        labels = papers["label"].tolist() if (papers["label"] != "").any() else None
        words = {int(row.topic): list(row.keywords) for row in topics.itertuples()}
        metrics = compute_metrics(paper_texts(papers), assignments["topic"].tolist(), words, labels)
        started = time.perf_counter()
        before = keyword_names(papers, topics, assignments, config.label)
        before_seconds = time.perf_counter() - started
        after = dict(zip(topics["topic"], topics["name"], strict=True))
        after_groups = dict(zip(topics["coarse_topic"], topics["coarse_name"], strict=True))
        before_groups = {group: before[("group", group)] for group in set(topics["coarse_topic"]) if group >= 0}
        for label, names, groups, spent in (("before", before, before_groups, before_seconds),
                                            ("after", after, after_groups, seconds)):  # fmt: skip
            row = audit_row(papers, topics, assignments, names, groups, metrics, spent)
            table.append({"corpus": corpus, "papers": len(papers), "topics": len(words) - (OUTLIER_TOPIC in words),
                          "names": label, **row})  # fmt: skip
        shown[corpus] = [
            {"topic": int(t), "size": int(s), "before": before[t], "after": after[t], "coverage": c, "faults": f}
            for t, s, c, f in zip(
                topics["topic"], topics["size"], topics["name_coverage"], topics["name_faults"], strict=True
            )
        ] + [{"group": int(g), "before": before_groups[g], "after": after_groups[g]} for g in sorted(before_groups)]
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
