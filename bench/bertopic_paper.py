"""The BERTopic paper's evaluation (Grootendorst 2022, Tables 1-2), for papertopics and plain BERTopic.

    .venv/bin/python bench/bertopic_paper.py [--datasets 20newsgroups bbc-news] [--seeds 3] [--vocabulary full]

Protocol, as in the paper: OCTIS-style preprocessing (punctuation and stop words removed,
lemmatised, documents under 5 words dropped), all-MiniLM-L6-v2 embeddings of the
preprocessed documents, topic counts 10 to 50 in steps of 10, 3 seeds each, NPMI (gensim
c_npmi, top 10 words, against the preprocessed corpus) and topic diversity averaged over
all of them. Both systems get the same embeddings and the same preprocessed texts, in the
same run.

Where this differs from the paper (printed with the table):
- lemmatisation uses simplemma's dictionary, not spaCy's en_core_web_sm (not on PyPI), and
  scikit-learn's stop words;
- the paper's inputs were OCTIS' published corpora, vocabulary-filtered with settings OCTIS
  does not publish: ``--vocabulary octis`` (the default) keeps the most frequent words up to
  the sizes OCTIS reports (20NewsGroup: 1,612 words, BBC_News: 2,949); ``--vocabulary full``
  keeps every word (20 Newsgroups: about 88,000), which lowers NPMI for both systems;
- 20 Newsgroups is read from the raw bydate files (subject + body, headers dropped), not
  OCTIS' pre-processed download; BBC News is deduplicated (100 exact duplicates);
- papertopics clusters with BERTopic's HDBSCAN settings (min_cluster_size=10, min_samples=10)
  instead of its size-adapted defaults, which find fewer than 50 topics on these corpora;
- embeddings come from papertopics' default embedding backend (int8 ONNX MiniLM, checked
  against fp32 sentence-transformers) at the paper's 256 word pieces per document;
- a topic count k is reached by merging topics: BERTopic ``reduce_topics(nr_topics=k)``
  (what ``BERTopic(nr_topics=k)`` does after clustering), and papertopics
  ``label.n_topics: k`` (merging along its topic tree).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = ROOT.parent / "shared" / "corpora"
DATASETS = {"20newsgroups": CORPORA / "20newsgroups", "bbc-news": CORPORA / "bbc-news" / "bbc"}
TOPIC_COUNTS = (10, 20, 30, 40, 50)
# Vocabulary sizes of OCTIS' preprocessed 20NewsGroup and BBC_News datasets, the paper's inputs.
OCTIS_VOCABULARY = {"20newsgroups": 1612, "bbc-news": 2949}
PAPER = {  # Grootendorst (2022), Tables 1 and 2: NPMI / topic diversity
    ("20newsgroups", "all-MiniLM-L6-v2"): (0.159, 0.833),
    ("bbc-news", "all-MiniLM-L6-v2"): (0.170, 0.802),
    ("20newsgroups", "all-mpnet-base-v2"): (0.166, 0.851),
    ("bbc-news", "all-mpnet-base-v2"): (0.167, 0.794),
}


def load(dataset: str, vocabulary: str) -> tuple[list[str], list[str]]:
    """Preprocessed documents and their labels; ``vocabulary`` "octis" keeps OCTIS' vocabulary size."""
    from bench.octis import octis_preprocess
    from pipeline.config import InputSpec, ParseConfig
    from pipeline.parse import parse
    from pipeline.schema import paper_texts
    from pipeline.sources import collect_sources

    folder = DATASETS[dataset]
    if not folder.exists():
        sys.exit(f"bench: {folder} is absent: the shared corpora are needed for this benchmark")
    # Deduplicated by title as papertopics does; newsgroup replies share subjects, and the
    # reader keys 20 Newsgroups posts by subject and body together.
    sources = collect_sources([InputSpec(path=str(folder), format="text-folder")])
    papers = parse(sources, ParseConfig(min_text_chars=1)).papers
    max_features = OCTIS_VOCABULARY[dataset] if vocabulary == "octis" else None
    corpus = octis_preprocess(paper_texts(papers), max_features=max_features)
    labels = papers["label"].iloc[corpus.indices].tolist()
    return corpus.texts, labels


def embed(texts: list[str], max_tokens: int) -> np.ndarray:
    from pipeline.config import EmbedConfig
    from pipeline.embed import load_backend
    from pipeline.stages.embed import embeddings_for

    backend = load_backend(EmbedConfig(max_tokens=max_tokens))
    return embeddings_for(ROOT / "outputs" / ".cache", backend, texts), backend


def scores(words: list[list[str]], texts: list[str]) -> tuple[float, float]:
    from pipeline.metrics import PRESPLIT_PATTERN, diversity, npmi

    return npmi(words, texts, token_pattern=PRESPLIT_PATTERN), diversity(words)


def plain_bertopic(texts: list[str], embeddings: np.ndarray, seed: int) -> dict[int, tuple[float, float, float]]:
    from bertopic import BERTopic
    from umap import UMAP

    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    model = BERTopic(umap_model=umap_model)
    model.fit_transform(texts, embeddings=embeddings)
    results = {}
    for k in TOPIC_COUNTS:
        reduced = copy.deepcopy(model)
        reduced.reduce_topics(texts, nr_topics=k + 1)  # + 1: BERTopic counts the -1 outlier topic
        topic_ids = [topic for topic in reduced.get_topics() if topic != -1]
        words = [[word for word, _ in reduced.get_topic(topic)][:10] for topic in topic_ids]
        outliers = float(np.mean(np.asarray(reduced.topics_) == -1))
        results[k] = (*scores(words, texts), outliers)
    return results


def papertopics(texts: list[str], embeddings: np.ndarray, backend, seed: int) -> dict[int, tuple[float, float, float]]:
    from pipeline.cluster.fit import cluster_papers
    from pipeline.config import ClusterConfig, LabelConfig
    from pipeline.label import label_topics
    from pipeline.metrics import top_words
    from pipeline.schema import PAPER_COLUMNS

    papers = pd.DataFrame({column: [""] * len(texts) for column in PAPER_COLUMNS})
    papers["paper_id"] = [str(i) for i in range(len(texts))]
    papers["abstract"] = texts
    # BERTopic's clustering settings (HDBSCAN min_cluster_size=10, min_samples=10): the protocol needs
    # up to 50 topics, and equal clustering settings isolate what labelling and outlier handling add.
    clusters = cluster_papers(embeddings, ClusterConfig(min_cluster_size=10, min_samples=10), seed)
    results = {}
    for k in TOPIC_COUNTS:
        labelled = label_topics(papers, embeddings, clusters.labels, clusters.layout, LabelConfig(n_topics=k),
                                backend.encode)  # fmt: skip
        topics = labelled.topics[labelled.topics["topic"] >= 0]
        words = [top_words(list(keywords)) for keywords in topics["keywords"]]
        outliers = float(np.mean(labelled.assignments["topic"].to_numpy() == -1))
        results[k] = (*scores(words, texts), outliers)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    # The paper's MiniLM reads up to 256 word pieces (its sentence-transformers limit); newsgroup posts are long.
    parser.add_argument("--max-tokens", type=int, default=256, help="word pieces embedded per document")
    parser.add_argument("--vocabulary", choices=["full", "octis"], default="octis", help="see the module docstring")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        start = time.perf_counter()
        texts, _labels = load(dataset, args.vocabulary)
        embeddings, backend = embed(texts, args.max_tokens)
        words = len({word for text in texts for word in text.split()})
        print(f"{dataset}: {len(texts)} documents, {words} words after preprocessing, embedded in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        per_system: dict[str, list[tuple[float, float, float]]] = {"papertopics": [], "plain BERTopic": []}
        for seed in range(args.seeds):
            for system, results in (
                ("papertopics", papertopics(texts, embeddings, backend, seed)),
                ("plain BERTopic", plain_bertopic(texts, embeddings, seed)),
            ):
                per_system[system] += list(results.values())
                detail = ", ".join(f"k={k}: {v[0]:.3f}/{v[1]:.3f}" for k, v in results.items())
                print(f"  seed {seed} {system}: {detail}")
        for system, values in per_system.items():
            npmi_mean, diversity_mean, outliers_mean = (float(np.mean([v[i] for v in values])) for i in range(3))
            rows.append((dataset, system, npmi_mean, diversity_mean, outliers_mean))
        npmi_paper, diversity_paper = PAPER[(dataset, "all-MiniLM-L6-v2")]
        rows.append((dataset, "BERTopic paper (MiniLM)", npmi_paper, diversity_paper, float("nan")))
        print(f"{dataset} done in {time.perf_counter() - start:.0f} s")
    print("\n| dataset | system | NPMI | diversity | outlier share |\n|---|---|---|---|---|")
    for dataset, system, npmi_value, diversity_value, outliers in rows:
        shown = "" if np.isnan(outliers) else f"{outliers:.3f}"
        print(f"| {dataset} | {system} | {npmi_value:.3f} | {diversity_value:.3f} | {shown} |")


if __name__ == "__main__":
    main()
