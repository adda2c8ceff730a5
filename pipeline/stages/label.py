"""Label stage: papers, vectors and clusters in; topics, assignments, topic tree and metrics out.

Three sub-results are kept between runs through the store's memo, so that changing a label
setting costs seconds at 75k papers: each text's tokens (per text, shared by all runs), the
document-term matrix (while the texts, stop words and n-gram length stay) and the c-TF-IDF
matrix (while, in addition, every paper keeps its topic).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import RunConfig
from pipeline.errors import InputError
from pipeline.feed.label_step import FEED_OUTPUTS, keep_placements, previous_topics
from pipeline.feed.label_step import stable_ids as _stable_ids
from pipeline.files import array_to_bytes, hash_json, json_to_bytes, sha256_bytes, table_to_bytes
from pipeline.memo import MemoStore, SparseMatrix, text_key
from pipeline.schema import paper_texts
from pipeline.stage import Stage, StageContext, StageResult
from pipeline.store import ArtifactStore

if TYPE_CHECKING:
    from scipy import sparse

    from pipeline.feed.identity import PreviousTopics
    from pipeline.feed.label_update import LabelState
    from pipeline.label.phrases import PhraseIndex
    from pipeline.terms import TermCounts, TokenizedTexts

# A run's tokens assembled from several shards (after papers were added) are kept whole so that
# the next label change reads one file instead of assembling them again (1.8 s at 75k papers);
# each is as large as the texts' shards, so only the two most recently used are kept.
ASSEMBLED_TOKENS_KEPT = 2
# States for the update path (pipeline.feed.label_update): about 100 MB each at 75k papers; the
# last run's is the one the next run needs, and one more covers a run that was not kept.
LABEL_STATES_KEPT = 2


def _settings(config: RunConfig) -> dict[str, Any]:
    return {"seed": config.seed, **config.label.model_dump()}


def _model(context: StageContext) -> list[str]:
    from pipeline.embed import model_identity

    return [model_identity(context.config.embed)]


def cached_tokens(cache: MemoStore, texts: list[str]) -> tuple[TokenizedTexts, list[bytes]]:
    """The texts tokenised, each text at most once per output folder, and each text's key."""
    from pipeline import terms

    keys = [text_key(text) for text in texts]
    tokens, _ = cache.memo_rows(
        f"tokens/v{terms.TOKENIZER_VERSION}",
        keys,
        lambda indices: terms.tokenize_texts([texts[index] for index in indices]),
        terms.TokenRows(),
        keep_assembled=ASSEMBLED_TOKENS_KEPT,
    )
    return tokens, keys


def counts_settings(config: RunConfig) -> str:
    """What term counts depend on besides the texts: the tokenizer, the stop words and the n-grams."""
    from pipeline.label import stop_words
    from pipeline.terms import TERM_COUNTS_VERSION, TOKENIZER_VERSION

    return hash_json(
        {"tokenizer": TOKENIZER_VERSION, "stop_words": stop_words(config.label), "ngram_max": config.label.ngram_max,
         "terms_version": TERM_COUNTS_VERSION}
    )  # fmt: skip


def term_counts_key(text_digest: str, config: RunConfig) -> str:
    """What the label stage's document-term matrix depends on: the texts, stop words and n-grams."""
    from pipeline.label import stop_words
    from pipeline.terms import TERM_COUNTS_VERSION, TOKENIZER_VERSION

    return hash_json(
        {"texts": text_digest, "tokenizer": TOKENIZER_VERSION, "stop_words": stop_words(config.label),
         "ngram_max": config.label.ngram_max, "terms_version": TERM_COUNTS_VERSION}
    )  # fmt: skip


def cached_term_counts(cache: MemoStore, tokens: TokenizedTexts, key: str, config: RunConfig) -> TermCounts:
    """The document-term matrix, reused while the texts, stop words and n-grams stay."""
    from pipeline.label import term_counts_for
    from pipeline.terms import TermCountsArrays

    return cache.memo("term-counts", key, lambda: term_counts_for(tokens, config.label), TermCountsArrays())


def cached_class_weights(
    cache: MemoStore,
    counts: TermCounts,
    counts_key: str,
    topic_per_paper: np.ndarray,
    reduce_frequent_words: bool,
    min_topic_share: float,
) -> sparse.csr_matrix:
    """The c-TF-IDF matrix, reused while the term counts and every paper's topic stay."""
    from pipeline import label

    key = hash_json(
        {
            "counts": counts_key,
            "topics": sha256_bytes(array_to_bytes(topic_per_paper)),
            "version": label.CLASS_WEIGHTS_VERSION,
            "reduce_frequent_words": reduce_frequent_words,
            "min_topic_share": min_topic_share,
        }
    )
    return cache.memo(
        "class-weights",
        key,
        lambda: label.class_weights(counts, topic_per_paper, reduce_frequent_words, min_topic_share),
        SparseMatrix(),
    )


def cached_phrase_index(cache: MemoStore, papers: pd.DataFrame, config: RunConfig) -> PhraseIndex:
    """The candidate names of the papers, reused while their titles, abstracts and stop words stay."""
    from pipeline.label import phrase_index, stop_words
    from pipeline.label.phrases import PHRASE_INDEX_VERSION, PhraseIndexArrays

    digest = hashlib.sha256()
    for title, abstract in zip(papers["title"].tolist(), papers["abstract"].tolist(), strict=True):
        digest.update(f"{title}\x00{abstract}\x00".encode())
    key = hash_json(
        {"texts": digest.hexdigest(), "stop_words": stop_words(config.label), "version": PHRASE_INDEX_VERSION}
    )
    return cache.memo("phrases", key, lambda: phrase_index(papers, config.label), PhraseIndexArrays())


def _prepare_npmi() -> None:
    from pipeline.metrics import prepare_npmi

    prepare_npmi()


# A column the topics table carries through the feed's renaming: the name its audit was made for.
AUDITED = "_audited_name"


def run(context: StageContext) -> StageResult:
    from pipeline.feed.label_update import STATE_NAMESPACE, LabelStateArrays, state_key
    from pipeline.feed.relabel import Updated, updated_labels

    store, config = context.store, context.config
    # Loading NPMI's compiled code (numba, about 1 s) overlaps the reading of this stage's caches,
    # which waits on the disk with the GIL released.
    npmi_ready = threading.Thread(target=_prepare_npmi, name="prepare-npmi", daemon=True)
    npmi_ready.start()
    papers = store.read_table("parse", "papers.parquet")
    texts = paper_texts(papers)
    tokens, text_keys = cached_tokens(store.cache, texts)
    settings = counts_settings(config)
    previous, feed = previous_topics(context)
    cluster_labels, kept_note = keep_placements(
        store.read_array("cluster", "labels.npy"), papers["paper_id"].astype(str).tolist(), previous
    )
    embeddings, layout = store.read_array("embed", "embeddings.npy"), store.read_array("cluster", "layout.npy")
    updated = (
        updated_labels(context, previous, feed, papers, text_keys, embeddings, cluster_labels, layout, settings)
        if previous is not None
        else None
    )
    state: LabelState | None
    if isinstance(updated, Updated):
        assignments, topics, hierarchy, feed_outputs = (
            updated.assignments, updated.topics, updated.hierarchy, updated.feed_outputs
        )  # fmt: skip
        notes, state = updated.notes, updated.state
    else:
        assignments, topics, hierarchy, feed_outputs, notes, state = _label_in_full(
            context, papers, texts, tokens, text_keys, embeddings, cluster_labels, layout, previous, feed
        )
        notes = ([f"labelled in full: {updated}"] if updated else []) + notes
    npmi_ready.join()
    metrics = run_metrics(papers, assignments, topics, tokens, texts)
    counts_summary = {
        "topics": int((topics["topic"] >= 0).sum()),
        "outliers": int(topics.loc[topics["topic"] < 0, "size"].sum()),
        "npmi": metrics["npmi"],
        "labelled": "update" if isinstance(updated, Updated) else "full",
    }
    outputs = {
        "assignments.parquet": table_to_bytes(assignments),
        "topics.parquet": table_to_bytes(topics),
        "hierarchy.parquet": table_to_bytes(hierarchy),
        "label.json": json_to_bytes({"notes": notes + ([kept_note] if kept_note else [])}),
        "metrics.json": json_to_bytes(metrics),
        **feed_outputs,
    }
    if state is not None:  # what the next run's update path starts from
        key = state_key(sha256_bytes(outputs["assignments.parquet"]), settings)
        store.cache.put(STATE_NAMESPACE, key, state, LabelStateArrays(), keep=LABEL_STATES_KEPT)
    return outputs, counts_summary


def _label_in_full(
    context: StageContext,
    papers: pd.DataFrame,
    texts: list[str],
    tokens: TokenizedTexts,
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    previous: PreviousTopics | None,
    feed: dict[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, bytes], list[str], LabelState | None]:
    """The label tables from every paper, under stable ids; also the state the next update starts from."""
    from pipeline.embed import load_backend
    from pipeline.feed.label_update import build_state
    from pipeline.label import keyword_min_share, label_topics, llm_group_names, llm_names, with_name_audit

    store, config = context.store, context.config
    # The run's embedding backend: it weighs name phrases by meaning, and embeds key phrases for mmr/keybert.
    word_embedder = load_backend(config.embed).encode
    counts_key = term_counts_key(sha256_bytes(b"".join(text_keys)), config)
    counts = None
    if config.label.representation == "none":
        counts = cached_term_counts(store.cache, tokens, counts_key, config)
    result = label_topics(
        papers,
        embeddings,
        cluster_labels,
        layout,
        config.label,
        word_embedder,
        tokens=tokens,
        counts=counts,
        class_weights_of=lambda counts, topics: cached_class_weights(
            store.cache, counts, counts_key, topics, config.label.reduce_frequent_words, keyword_min_share(config.label)
        ),
        seed=config.seed,
        phrases=(phrases := cached_phrase_index(store.cache, papers, config)),
    )
    topics = llm_names(result.topics, papers, config.label.llm, result.assignments)
    topics, hierarchy = llm_group_names(topics, result.hierarchy, papers, config.label.llm)
    topics = topics.assign(**{AUDITED: topics["name"]})  # the names the audit columns speak of
    assignments, topics, hierarchy, feed_outputs, feed_notes = _stable_ids(
        context, previous, feed, papers, embeddings, result.assignments, topics, hierarchy
    )
    # A topic that keeps its name from an earlier run is audited under that name.
    if (topics["name"] != topics[AUDITED]).any():
        topics = with_name_audit(topics, phrases.text, assignments["topic"].to_numpy())
    topics = topics.drop(columns=AUDITED)
    state = None
    if counts is not None:
        names = dict(zip(topics["topic"].astype(int).tolist(), topics["name"].astype(str).tolist(), strict=True))
        paper_ids = papers["paper_id"].astype(str).tolist()
        state = build_state(paper_ids, text_keys, assignments["topic"].to_numpy(), counts, phrases.text, names)
    return assignments, topics, hierarchy, feed_outputs, result.notes + feed_notes, state


def run_metrics(
    papers: pd.DataFrame,
    assignments: pd.DataFrame,
    topics: pd.DataFrame,
    tokens: TokenizedTexts | None = None,
    texts: list[str] | None = None,
) -> dict[str, Any]:
    """Topic quality of a run: coherence, diversity, outliers, agreement with known labels.

    ``tokens``: the papers' texts tokenised (``pipeline.terms``), and ``texts`` the papers'
    texts (``schema.paper_texts``), when the caller has them.
    """
    from pipeline.label import name_audit_metrics
    from pipeline.metrics import compute_metrics

    labels = papers["label"].tolist() if (papers["label"] != "").any() else None
    topic_words = {int(row.topic): list(row.keywords) for row in topics.itertuples()}
    texts = paper_texts(papers) if texts is None else texts
    metrics = compute_metrics(texts, assignments["topic"].tolist(), topic_words, labels, tokens)
    # How much of each topic its name speaks for (coverage and lift of the name's main phrase).
    return {**metrics, **name_audit_metrics(papers, assignments, topics)}


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


STAGE = Stage(
    name="label",
    code_version=17,
    inputs=(("parse", "papers.parquet"), ("embed", "embeddings.npy"), ("cluster", "labels.npy"),
            ("cluster", "layout.npy")),
    outputs=("assignments.parquet", "topics.parquet", "hierarchy.parquet", "label.json", "metrics.json",
             *FEED_OUTPUTS),
    config_slice=_settings,
    run=run,
    extra_key=_model,
    modules=("pipeline.stages.label", "pipeline.label", "pipeline.terms", "pipeline.factorize", "pipeline.metrics",
             "pipeline.agreement",
             "pipeline.feed"),
)  # fmt: skip
