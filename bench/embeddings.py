"""Embedding backends compared on labelled arXiv papers: speed, and whether the topics hold up.

    .venv/bin/python bench/embeddings.py [--sample 5000] [--timing-texts 256] [--rounds 3] [--no-topics]
        [--variants PART ...] [--quality-variants PART ...] [--group cuts] [--kmeans-seeds 5] [--no-fp32-cosines]

Reads ../shared/corpora (arxiv-daily-cs: a seeded sample of unique papers; arxiv-kaggle-2000:
all 2,000), label = primary category (first of ``categories``), text = title + abstract as
the pipeline builds it. Prints the CPU (model name and int8-relevant flags from ``lscpu``)
and the ``uptime`` load before and after the timing, then:

- one side-by-side table of every variant (``VARIANTS``): the backends, and the onnx int8
  model built and run other ways (``pipeline.embed.onnx.Recipe``: SkipLayerNormalization fused
  as before, 7-bit weights, uint8 weights, attention unfused or as MultiHeadAttention, GELU's
  tanh approximation; ``bench/onnx_variants.py``: static QDQ int8 calibrated on 256 fixed texts,
  MatMulNBits weights with int8 compute, the sessions' optimisation level, 1 session x 2 threads
  instead of one single-threaded session per core, one session run by every worker; token
  budgets; MiniLM cut to its first layers; texts without stop words and punctuation). ``--group
  cuts`` picks issue 32's question: can fewer word pieces, fewer layers or content words alone
  make MiniLM ~2x cheaper on every CPU? Every variant embeds the same ``--timing-texts``
  daily-cs texts, once per round, in a rotated order within the same process (the machine is
  shared, so variants are interleaved). Columns: docs/s (wall, median round), the median
  per-round speed ratio to the int8 build before this change (or to the default when that is not
  timed), CPU ms per doc (this process's CPU time, all threads: robust to other load, unlike
  wall time), the median per-round ratio of the default's CPU time to the variant's, that ratio
  times issue 32's 64.2 docs/s measured for the default on an AVX2-only CPU (an estimate: not
  measured, and the older build the reporter ran was somewhat slower), the mean / min cosine to
  sentence-transformers fp32 at the variant's own token budget (what quantisation costs), at 256
  (what truncation costs too) and to the default, the first variant above with bit-identical
  vectors, and k-means NMI on each corpus once scored;
- per corpus, quality: NMI (k-means): k-means with k = number of primary categories, on the
  unit vectors, mean and standard deviation over ``--kmeans-seeds`` seeds, NMI against the
  primary category;
  topics, NMI (topics), outliers, NPMI: ``pipeline.cluster.fit.cluster_papers`` with the default
  cluster settings (UMAP + HDBSCAN, seed 42), NMI of its topics (outliers as one group)
  against the primary category, the outlier share, and the mean NPMI of each topic's 10
  top words (c-TF-IDF over unigrams without English stop words; co-occurrence in documents
  of the same corpus).

The fp32 ONNX export equals sentence-transformers (cosine printed with the table), so the
quality columns of "fp32, 256 tokens" stand for both, and sentence-transformers itself is
only timed. Vectors are kept in the pipeline's embedding cache (``outputs/.cache``), so a
rerun only re-times and re-clusters.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# ../shared/corpora beside the repository, or where $PAPERTOPICS_CORPORA says (a worktree elsewhere).
CORPORA = Path(os.environ.get("PAPERTOPICS_CORPORA", ROOT.parent / "shared" / "corpora"))
DAILY = CORPORA / "arxiv-daily-cs" / "data"
KAGGLE = CORPORA / "arxiv-kaggle-2000" / "arxiv_data.csv"

from bench.onnx_variants import Variant, make_backend, nbits_rows_are_independent  # noqa: E402
from pipeline.config import ClusterConfig, EmbedConfig  # noqa: E402
from pipeline.embed import EmbeddingBackend, embed_texts, load_backend  # noqa: E402
from pipeline.embed.onnx import Recipe, cpu_cores  # noqa: E402
from pipeline.memo import MemoStore  # noqa: E402
from pipeline.stages.embed import cached_embeddings as cached_vectors  # noqa: E402

REFERENCE = "sentence-transformers fp32, 256 tok"
QUALITY_REFERENCE = "onnx fp32, 256 tok"
BEFORE = "onnx int8, 128 tok, SkipLayerNorm fused, 8-bit weights (before: BUILD_VERSION 1)"
DEFAULT = "onnx int8, 128 tok (default)"
INT8 = EmbedConfig(backend="onnx-int8", max_tokens=128)
# Issue 32, item 1: fewer word pieces, and MiniLM cut to its first layers (and both at once).
BUDGETS = (112, 96, 80, 64)
CUT_LAYERS = ((5, 128), (4, 128), (3, 128), (5, 96), (4, 96), (5, 80), (4, 112))
# ... and texts without stop words and punctuation, so that fewer pieces hold as many content words.
CONTENT_BUDGETS = (96, 80, 64)
# docs/s of the default before BUILD_VERSION 2 on an AVX2-only AMD EPYC, measured by issue 32's
# reporter; the bench scales it by a variant's CPU time to estimate its AVX2 speed (not measured).
REPORTED_AVX2_DOCS_S = 64.2
VARIANTS = (
    Variant(REFERENCE, EmbedConfig(backend="sentence-transformers", max_tokens=256), quality=False),
    Variant(QUALITY_REFERENCE, EmbedConfig(backend="onnx", max_tokens=256)),
    Variant("onnx fp32, 128 tok", EmbedConfig(backend="onnx", max_tokens=128), quality=False),
    Variant("onnx int8, 256 tok", EmbedConfig(backend="onnx-int8", max_tokens=256)),
    Variant(BEFORE, INT8, recipe=Recipe(skip_layer_norm=True, reduce_range=False)),
    Variant(
        f"{BEFORE}, session level EXTENDED",
        INT8,
        quality=False,
        recipe=Recipe(skip_layer_norm=True, reduce_range=False),
        level="extended",
    ),
    Variant(DEFAULT, INT8),
    Variant(f"{DEFAULT}, 1 session x 2 threads", INT8, quality=False, threads=2),
    Variant("onnx int8, 128 tok, 8-bit weights (BUILD_VERSION 2)", INT8, recipe=Recipe(reduce_range=False)),
    Variant(
        "onnx int8, 128 tok, uint8 weights (u8u8 kernels)", INT8, recipe=Recipe(reduce_range=False, weights="uint8")
    ),
    Variant("onnx int8, 128 tok, static QDQ (calibrated)", INT8, static=True),
    Variant(f"{DEFAULT}, one session run by every worker at once", INT8, quality=False, shared=True),
    Variant(
        "onnx int8, 128 tok, attention unfused (int8 Q/K/V, fp32 scores)", INT8, recipe=Recipe(attention="unfused")
    ),
    Variant("onnx int8, 128 tok, MultiHeadAttention op", INT8, quality=False, recipe=Recipe(attention="multihead")),
    Variant("onnx int8, 128 tok, GELU tanh approximation (FastGelu)", INT8, recipe=Recipe(gelu="tanh")),
    Variant(
        "onnx MatMulNBits 8-bit, block 128, int8 compute, 128 tok",
        INT8,
        recipe=Recipe(attention="unfused"),
        nbits=(8, 128),
    ),
    Variant(
        "onnx MatMulNBits 4-bit, block 32, int8 compute, 128 tok",
        INT8,
        recipe=Recipe(attention="unfused"),
        nbits=(4, 32),
    ),
    *(Variant(f"onnx int8, {tokens} tok", EmbedConfig(backend="onnx-int8", max_tokens=tokens)) for tokens in BUDGETS),
    *(
        Variant(
            f"onnx int8, first {layers} layers, {tokens} tok",
            EmbedConfig(backend="onnx-int8", max_tokens=tokens),
            recipe=Recipe(layers=layers),
        )
        for layers, tokens in CUT_LAYERS
    ),
    *(
        Variant(
            f"onnx int8, {tokens} tok of content words",
            EmbedConfig(backend="onnx-int8", max_tokens=tokens),
            content_words=True,
        )
        for tokens in CONTENT_BUDGETS
    ),
    Variant("model2vec (preview), 256 tok", EmbedConfig(backend="model2vec", max_tokens=256)),
)

# Named sets of variants for --group: the variants of one question, side by side.
# Each maps a variant's name to whether the corpora are embedded and scored with it.
GROUPS = {
    "cuts": {BEFORE: False, DEFAULT: True}
    | {f"onnx int8, {tokens} tok": True for tokens in BUDGETS}
    | {f"onnx int8, first {layers} layers, {tokens} tok": True for layers, tokens in CUT_LAYERS}
    | {f"onnx int8, {tokens} tok of content words": True for tokens in CONTENT_BUDGETS},
}


def clean(text: str) -> str:
    return " ".join(str(text).split())


def paper_text(title: str, abstract: str) -> str:
    title, abstract = clean(title), clean(abstract)
    return f"{title}. {abstract}".strip(". ") if title and abstract else (title or abstract)


def load_daily(sample: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded sample of unique arxiv-daily-cs papers: texts and primary categories."""
    papers: dict[str, tuple[str, str]] = {}
    for path in sorted(DAILY.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            paper_id = str(record["id"])
            if paper_id not in papers and record.get("categories"):
                papers[paper_id] = (paper_text(record["title"], record["summary"]), record["categories"][0])
    ids = sorted(papers)
    random.Random(seed).shuffle(ids)
    chosen = [papers[paper_id] for paper_id in ids[:sample]]
    return [text for text, _ in chosen], [label for _, label in chosen]


def load_kaggle(limit: int) -> tuple[list[str], list[str]]:
    import pandas as pd

    table = pd.read_csv(KAGGLE, dtype=str, keep_default_na=False).head(limit)
    texts = [paper_text(title, abstract) for title, abstract in zip(table["title"], table["abstract"], strict=True)]
    return texts, [categories.split()[0] for categories in table["categories"]]


def time_variants(
    variants: list[Variant],
    texts: list[str],
    rounds: int,
    cache_dir: Path,
    calibration: list[str],
    fp32_cosines: bool = True,
) -> dict[str, dict[str, float | str]]:
    """Wall docs/s, process CPU seconds per doc and cosines per variant, all timed in one process.

    Cosines: to sentence-transformers fp32 at 256 tokens (when timed), at the variant's own token
    budget (what quantisation alone costs), and to the default; "same vectors as" names the first
    variant above it whose vectors are bit-identical on the timing texts. MatMulNBits variants
    also run texts of one token count alone and in shuffled batches of 8: "batched" gives the
    largest element difference and the share of bit-identical vectors.
    """
    encoders, batched = {}, {}
    for variant in variants:
        backend = make_backend(variant, cache_dir, calibration)
        if variant.nbits:
            difference, identical = nbits_rows_are_independent(backend, texts[:96])  # type: ignore[arg-type]
            batched[variant.name] = f"{difference:.1g} / {identical:.0%}"
        encoders[variant.name] = (lambda b: lambda batch: embed_texts(batch, b))(backend)
        started = time.perf_counter()
        encoders[variant.name](texts[:8])  # load or build the model outside the timing
        print(f"  loaded {variant.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    vectors: dict[str, np.ndarray] = {}
    names = list(encoders)
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wall, process = time.perf_counter(), time.process_time()
            vectors[name] = encoders[name](texts)
            seconds[name].append(time.perf_counter() - wall)
            cpu[name].append(time.process_time() - process)
        print(f"  timing round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    references: dict[int, np.ndarray] = {}
    result: dict[str, dict[str, float | str]] = {}
    baseline = BEFORE if BEFORE in seconds else DEFAULT
    nan = np.full(len(texts), np.nan)
    for variant in variants:
        name, tokens = variant.name, variant.config.tokens
        if tokens not in references:  # fp32 at this token budget, untimed (kept in the embedding cache)
            config = EmbedConfig(backend="sentence-transformers", max_tokens=tokens)
            references[tokens] = (
                cached_embeddings(texts, load_backend(config, cache_dir), cache_dir) if fp32_cosines else nan[:, None]
            )
        own = vectors[name]
        same = next((other for other in names[: names.index(name)] if np.array_equal(vectors[other], own)), "")
        at_256 = (own * vectors.get(REFERENCE, nan[:, None])).sum(axis=1) if own.shape[0] == len(texts) else nan
        at_own = (own * references[tokens]).sum(axis=1) if own.shape == references[tokens].shape else nan
        at_default = (own * vectors[DEFAULT]).sum(axis=1) if DEFAULT in vectors else nan
        result[name] = {
            "docs_per_s": len(texts) / statistics.median(seconds[name]),
            "vs_before": statistics.median(
                [ref / mine for ref, mine in zip(seconds.get(baseline, seconds[name]), seconds[name], strict=True)]
            ),
            "baseline": baseline if baseline in seconds else name,
            "cpu_ms_per_doc": 1000 * statistics.median(cpu[name]) / len(texts),
            "cpu_vs_default": statistics.median(
                [ref / mine for ref, mine in zip(cpu.get(DEFAULT, cpu[name]), cpu[name], strict=True)]
            ),
            "cos_256": float(at_256.mean()),
            "cos_own": float(at_own.mean()),
            "cos_own_min": float(at_own.min()),
            "cos_default": float(at_default.mean()),
            "cos_default_min": float(at_default.min()),
            "same_as": same,
            "batched": batched.get(name, "-"),
        }
    return result


def machine() -> str:
    """The CPU's model name and int8-relevant flags (lscpu), and the load average (uptime)."""
    import subprocess

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"CPU: {fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs, "
        f"flags {' '.join(flag for flag in wanted if flag in flags) or 'none of ' + ' '.join(wanted)}; "
        f"uptime: {load}"
    )


def cached_embeddings(texts: list[str], backend: EmbeddingBackend, cache_dir: Path) -> np.ndarray:
    """Vectors of `texts`, embedding only those not in the pipeline's embedding cache."""
    started = time.perf_counter()
    vectors, embedded = cached_vectors(MemoStore(cache_dir), backend, texts)
    if embedded:
        print(
            f"  embedded {embedded} texts with {backend.model_key} in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return vectors


def kmeans_nmi(vectors: np.ndarray, labels: list[str], seeds: int = 5) -> tuple[float, float]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    k = len(set(labels))
    scores = [
        normalized_mutual_info_score(labels, KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(vectors))
        for seed in range(seeds)
    ]
    return float(np.mean(scores)), float(np.std(scores))


def topic_npmi(texts: list[str], topics: np.ndarray, top_n: int = 10) -> float:
    """Mean NPMI of the top words of each topic (c-TF-IDF), over document co-occurrence in `texts`."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(stop_words="english", min_df=5, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z-]+\b")
    counts = vectorizer.fit_transform(texts).tocsr()
    present = (counts > 0).astype(np.float64).tocsc()
    n_docs = counts.shape[0]
    ids = sorted(set(topics.tolist()) - {-1})
    per_topic = np.vstack([np.asarray(counts[topics == topic].sum(axis=0)).ravel() for topic in ids])
    tf = per_topic / np.maximum(per_topic.sum(axis=1, keepdims=True), 1)
    ctfidf = tf * np.log(1 + per_topic.sum(axis=1).mean() / np.maximum(per_topic.sum(axis=0), 1))
    scores = []
    for row in ctfidf:
        words = np.argsort(-row)[:top_n]
        sub = present[:, words]
        together = (sub.T @ sub).toarray() / n_docs
        alone = np.diag(together)
        for i in range(len(words)):
            for j in range(i + 1, len(words)):
                joint = together[i, j]
                if joint <= 0:
                    scores.append(-1.0)
                    continue
                pmi = np.log(joint / (alone[i] * alone[j]))
                scores.append(pmi / -np.log(joint) if joint < 1 else 1.0)
    return float(np.mean(scores)) if scores else float("nan")


def topic_scores(vectors: np.ndarray, texts: list[str], labels: list[str], seeds: int) -> dict[str, float]:
    """The pipeline's topics with default settings, averaged over `seeds` UMAP seeds from 42.

    Two readings per seed: HDBSCAN's raw clusters (outliers as one group), and the topics a
    run reports (``pipeline.label.label_topics``: merged to at most 100, outliers given to
    their nearest topic when close enough), with the run's own NPMI.
    """
    import pandas as pd
    from sklearn.metrics import normalized_mutual_info_score

    from pipeline.cluster.fit import cluster_papers
    from pipeline.config import LabelConfig
    from pipeline.label import label_topics
    from pipeline.metrics import compute_metrics
    from pipeline.schema import PAPER_COLUMNS

    papers = pd.DataFrame({column: [""] * len(texts) for column in PAPER_COLUMNS})
    papers["paper_id"] = [str(index) for index in range(len(texts))]
    papers["abstract"] = texts
    runs = []
    for seed in range(42, 42 + seeds):
        clusters = cluster_papers(vectors, ClusterConfig(), seed=seed)
        labelled = label_topics(papers, vectors, clusters.labels, clusters.layout, LabelConfig(), None)
        final = labelled.assignments["topic"].to_numpy()
        topic_words = {int(row.topic): list(row.keywords) for row in labelled.topics.itertuples()}
        metrics = compute_metrics(texts, final.tolist(), topic_words, labels)
        runs.append(
            {
                "topics": len(set(clusters.labels.tolist()) - {-1}),
                "nmi_topics": normalized_mutual_info_score(labels, clusters.labels),
                "outliers": float((clusters.labels < 0).mean()),
                "npmi_raw": topic_npmi(texts, clusters.labels),
                "final_topics": metrics["n_topics"],
                "nmi_final": metrics["nmi"],
                "outliers_final": metrics["outlier_share"],
                "npmi": metrics["npmi"],
            }
        )
    scores = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
    for key in ("nmi_topics", "outliers", "nmi_final", "outliers_final"):
        scores[f"{key}_std"] = float(np.std([run[key] for run in runs]))
    return scores


def print_timing(
    timing: dict[str, dict[str, float | str]], quality: dict[str, dict[str, dict[str, float]]], texts: int, rounds: int
) -> None:
    """The side-by-side table: speed, cosines and (once scored) k-means NMI per variant."""
    if timing:
        print(
            f"\n{texts} arxiv-daily-cs texts, {rounds} interleaved rounds (median), "
            f"{cpu_cores()} cores; CPU = this process's CPU time (all threads) per doc"
        )
        print(f"× = median per-round speed ratio to: {next(iter(timing.values()))['baseline']}")
        nmi_heads = "".join(f" k-means NMI {corpus} |" for corpus in quality)
        print(
            "| variant | docs/s (wall) | × | CPU ms / doc | CPU × default | AVX2 docs/s (estimate) "
            "| cosine to ST fp32, same tokens (mean / min) "
            "| cosine to ST fp32 256 | cosine to the default (mean / min) | same vectors as "
            f"| batched: max diff / identical |{nmi_heads}"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(quality))
    for name, row in timing.items():
        nmis = "".join(
            f" {rows[name]['nmi_kmeans']:.3f} ± {rows[name]['nmi_kmeans_std']:.3f} |" if name in rows else " - |"
            for rows in quality.values()
        )
        print(
            f"| {name} | {row['docs_per_s']:.1f} | {row['vs_before']:.2f} | {row['cpu_ms_per_doc']:.2f} "
            f"| {row['cpu_vs_default']:.2f} | {REPORTED_AVX2_DOCS_S * float(row['cpu_vs_default']):.0f} "
            f"| {row['cos_own']:.4f} / {row['cos_own_min']:.4f} | {row['cos_256']:.4f} "
            f"| {row['cos_default']:.4f} / {row['cos_default_min']:.4f} | {row['same_as'] or '-'} | {row['batched']} |"
            f"{nmis}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=5000, help="arxiv-daily-cs papers (seeded sample)")
    parser.add_argument("--kaggle-sample", type=int, default=2000, help="first N arxiv-kaggle-2000 papers")
    parser.add_argument("--timing-texts", type=int, default=256, help="texts each backend embeds per timing round")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds")
    parser.add_argument("--no-topics", action="store_true", help="skip UMAP + HDBSCAN topics and NPMI")
    parser.add_argument("--topic-seeds", type=int, default=1, help="UMAP seeds per topic score (mean, sd)")
    parser.add_argument("--no-timing", action="store_true", help="skip the timing rounds")
    parser.add_argument("--variants", nargs="*", help="only variants whose name contains one of these")
    parser.add_argument("--group", choices=sorted(GROUPS), help="only the variants of this named set (GROUPS)")
    parser.add_argument(
        "--no-fp32-cosines", action="store_true", help="skip the cosines to sentence-transformers fp32 (slow)"
    )
    parser.add_argument("--kmeans-seeds", type=int, default=5, help="k-means seeds per NMI (mean, sd)")
    parser.add_argument("--quality-variants", nargs="*", help="score only these of the timed variants (name parts)")
    parser.add_argument("--corpora", nargs="*", default=["arxiv-daily-cs", "arxiv-kaggle-2000"])
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "outputs" / ".cache")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    missing = [path for path in (DAILY, KAGGLE) if not path.exists()]
    if missing:
        print(
            f"{CORPORA} is absent or incomplete (missing: {', '.join(str(path) for path in missing)}): "
            "this benchmark needs the shared corpora arxiv-daily-cs and arxiv-kaggle-2000 beside the repository",
            file=sys.stderr,
        )
        return 2

    loaders = {
        "arxiv-daily-cs": lambda: load_daily(args.sample, seed=0),
        "arxiv-kaggle-2000": lambda: load_kaggle(args.kaggle_sample),
    }
    corpora = {name: loaders[name]() for name in args.corpora}
    wanted = [v for v in VARIANTS if not args.variants or any(part in v.name for part in args.variants)]
    if args.group:
        group = GROUPS[args.group]
        wanted = [replace(v, quality=group[v.name]) for v in wanted if v.name in group]
    print(machine(), file=sys.stderr, flush=True)
    before = machine()
    # Static int8 is calibrated on the 256 texts after the timing texts in the same seeded
    # sample: a fixed set, none of them timed.
    daily = load_daily(args.timing_texts + 256, seed=0)[0]
    timing_texts, calibration = daily[: args.timing_texts], daily[args.timing_texts :]
    timing = {}
    if not args.no_timing:
        timing = time_variants(
            wanted, timing_texts, args.rounds, args.cache_dir, calibration, fp32_cosines=not args.no_fp32_cosines
        )
    after = machine()

    print(f"\nbefore timing: {before}\nafter timing:  {after}", flush=True)
    print_timing(timing, {}, args.timing_texts, args.rounds)  # now, in case the scoring is cut short
    quality: dict[str, dict[str, dict[str, float]]] = {}
    for corpus, (texts, labels) in corpora.items():
        quality[corpus] = {}
        for variant in wanted:
            if not variant.quality or (
                args.quality_variants and not any(part in variant.name for part in args.quality_variants)
            ):
                continue
            print(f"{corpus}: {variant.name}", file=sys.stderr, flush=True)
            vectors = cached_embeddings(texts, make_backend(variant, args.cache_dir, calibration), args.cache_dir)
            scores: dict[str, float] = {}
            scores["nmi_kmeans"], scores["nmi_kmeans_std"] = kmeans_nmi(vectors, labels, args.kmeans_seeds)
            if not args.no_topics:
                scores.update(topic_scores(vectors, texts, labels, args.topic_seeds))
            quality[corpus][variant.name] = scores
            print(f"  {scores}", file=sys.stderr, flush=True)

    print_timing(timing, quality, args.timing_texts, args.rounds)
    for corpus, rows in quality.items():
        texts, labels = corpora[corpus]
        print(f"\n{corpus}: {len(texts)} papers, {len(set(labels))} primary categories")
        seeds = f"±sd, {args.topic_seeds} seeds"
        print(
            f"| backend | NMI k-means (±sd, {args.kmeans_seeds} seeds) | clusters | NMI clusters ({seeds}) "
            f"| outliers ({seeds}) "
            f"| topics | NMI topics ({seeds}) | outliers | NPMI |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, row in rows.items():
            topics = (
                f"{row['topics']:.0f} | {row['nmi_topics']:.3f} ± {row['nmi_topics_std']:.3f} "
                f"| {row['outliers']:.1%} ± {row['outliers_std']:.1%} "
                f"| {row['final_topics']:.0f} | {row['nmi_final']:.3f} ± {row['nmi_final_std']:.3f} "
                f"| {row['outliers_final']:.1%} ± {row['outliers_final_std']:.1%} | {row['npmi']:.3f}"
                if "topics" in row
                else "- | - | - | - | - | - | -"
            )
            print(f"| {name} | {row['nmi_kmeans']:.3f} ± {row['nmi_kmeans_std']:.3f} | {topics} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": [before, after], "timing": timing, "quality": quality}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
