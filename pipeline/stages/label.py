"""Label stage: papers, vectors and clusters in; topics, assignments, topic tree and metrics out.

Three paths, chosen per run and said in ``label.json``'s notes:

- **update** (``pipeline.feed.relabel``): a grown feed whose topics all keep their ids and
  names is labelled from the last run's per-topic sums;
- **all papers**: keywords, names, the tree and the audit from every paper's words, with the
  sub-results kept between runs (``pipeline.label.cache``) so that a label setting costs seconds;
- **sample** (``pipeline.label.sample``): above ``label.fit_sample`` papers, the topics are
  described from a seeded sample of each topic's papers; every paper keeps its topic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import RunConfig
from pipeline.feed.label_step import FEED_OUTPUTS, keep_placements, previous_topics
from pipeline.feed.label_step import stable_ids as _stable_ids
from pipeline.files import json_to_bytes, sha256_bytes, table_to_bytes
from pipeline.label.cache import (
    cached_class_counts,
    cached_class_weights,
    cached_phrase_index,
    cached_term_counts,
    cached_tokens,
    counts_settings,
    term_counts_key,
)
from pipeline.memo import text_key
from pipeline.schema import OUTLIER_TOPIC, paper_texts
from pipeline.stage import Stage, StageContext, StageResult

if TYPE_CHECKING:
    from pipeline.config import LabelConfig
    from pipeline.feed.identity import PreviousTopics
    from pipeline.feed.label_update import LabelState
    from pipeline.label import LabelResult
    from pipeline.label.class_counts import ClassCounts
    from pipeline.label.phrases import PhraseIndex
    from pipeline.terms import TermCounts, TokenizedTexts

# States for the update path (pipeline.feed.label_update): about 100 MB each at 75k papers; the
# last run's is the one the next run needs, and one more covers a run that was not kept.
LABEL_STATES_KEPT = 2


def _settings(config: RunConfig) -> dict[str, Any]:
    return {"seed": config.seed, **config.label.model_dump()}


def _model(context: StageContext) -> list[str]:
    from pipeline.embed import model_identity

    return [model_identity(context.config.embed)]


def _prepare_npmi() -> None:
    from pipeline.metrics import prepare_npmi

    prepare_npmi()


# A column the topics table carries through the feed's renaming: the name its audit was made for.
AUDITED = "_audited_name"


def run(context: StageContext) -> StageResult:
    from pipeline.feed.label_update import STATE_NAMESPACE, LabelStateArrays, state_key
    from pipeline.feed.relabel import Updated, updated_labels
    from pipeline.label.sample import label_sample_size

    store, config = context.store, context.config
    # Loading NPMI's compiled code (numba, about 1 s) overlaps the reading of this stage's caches,
    # which waits on the disk with the GIL released.
    npmi_ready = threading.Thread(target=_prepare_npmi, name="prepare-npmi", daemon=True)
    npmi_ready.start()
    papers = store.read_table("parse", "papers.parquet")
    texts = paper_texts(papers)
    sample_size = label_sample_size(len(papers), config.label.fit_sample)
    if sample_size < len(papers):  # only a sample's words are read (pipeline.label.sample)
        tokens, text_keys = None, [text_key(text) for text in texts]
    else:
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
    rows = None  # the papers the metrics are computed on: all, or the sample that described the topics
    if isinstance(updated, Updated):
        assignments, topics, hierarchy, feed_outputs = (
            updated.assignments, updated.topics, updated.hierarchy, updated.feed_outputs
        )  # fmt: skip
        notes, state = updated.notes, updated.state
    else:
        if tokens is None:
            labelled, rows, tokens = _label_sampled(
                context, papers, texts, text_keys, embeddings, cluster_labels, layout, sample_size
            )
        else:
            labelled = _label_all(context, papers, tokens, text_keys, embeddings, cluster_labels, layout)
        assignments, topics, hierarchy, feed_outputs, notes, state = _named_and_stable(
            context, labelled, papers, text_keys, embeddings, previous, feed, rows
        )
        notes = ([f"labelled in full: {updated}"] if updated else []) + notes
    npmi_ready.join()
    if rows is None:
        metrics = run_metrics(papers, assignments, topics, tokens, texts)
    else:
        sample = papers.iloc[rows].reset_index(drop=True)
        metrics = run_metrics(sample, assignments.iloc[rows].reset_index(drop=True), topics, tokens,
                              [texts[row] for row in rows.tolist()])  # fmt: skip
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


@dataclass(frozen=True)
class _Labelled:
    """What the full path hands on to naming by LLM and stable ids: the tables, and what audits names."""

    result: LabelResult
    phrases: PhraseIndex
    counts: TermCounts | None


def _label_all(
    context: StageContext,
    papers: pd.DataFrame,
    tokens: TokenizedTexts,
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    label_config: LabelConfig | None = None,
    class_counts: ClassCounts | None = None,
) -> _Labelled:
    """The label tables from every paper of ``papers`` (``label_config``: instead of the run's label settings).

    ``class_counts``: the keywords' term counts per cluster, when ``papers`` are a sample of the pile.
    """
    from pipeline.embed import load_backend
    from pipeline.label import keyword_min_share, label_topics

    store, config = context.store, context.config
    label_config = label_config or config.label
    # The run's embedding backend: it weighs name phrases by meaning, and embeds key phrases for mmr/keybert.
    word_embedder = load_backend(config.embed).encode
    counts_key = term_counts_key(sha256_bytes(b"".join(text_keys)), config)
    counts = None
    if label_config.representation == "none" and class_counts is None:
        counts = cached_term_counts(store.cache, tokens, counts_key, config)
    result = label_topics(
        papers,
        embeddings,
        cluster_labels,
        layout,
        label_config,
        word_embedder,
        tokens=tokens,
        counts=counts,
        class_weights_of=lambda counts, topics: cached_class_weights(
            store.cache, counts, counts_key, topics, label_config.reduce_frequent_words, keyword_min_share(label_config)
        ),
        seed=config.seed,
        phrases=(phrases := cached_phrase_index(store.cache, papers, config)),
        class_counts=class_counts,
    )
    return _Labelled(result, phrases, counts)


def _label_sampled(
    context: StageContext,
    papers: pd.DataFrame,
    texts: list[str],
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    size: int,
) -> tuple[_Labelled, np.ndarray, TokenizedTexts]:
    """The label tables of all papers, described from a sample of each topic (``pipeline.label.sample``).

    With c-TF-IDF keywords (representation "none") the keywords come from the term counts of
    all papers, counted in parts on the run's engine and summed (``pipeline.label.class_counts``).
    Returns the tables, the sampled rows and the sample's tokens (the metrics are computed on the sample).
    """
    from pipeline.label import LabelResult, merged_clusters
    from pipeline.label.sample import expanded, stratified_rows

    config = context.config
    labels, notes = merged_clusters(cluster_labels, embeddings, config.label)
    rows = stratified_rows(labels, size, config.seed)
    sample = papers.iloc[rows].reset_index(drop=True)
    tokens, keys = cached_tokens(context.store.cache, [texts[row] for row in rows.tolist()])
    n_topics = len(set(labels.tolist()) - {OUTLIER_TOPIC})
    # The clusters are merged and outliers placed already, over all papers: the sample keeps them.
    sample_config = config.label.model_copy(update={"reduce_outliers": False, "n_topics": max(n_topics, 1)})
    class_counts, counts_note = None, None
    if config.label.representation == "none":
        class_counts, counts_note = cached_class_counts(
            context.store.cache, texts, sha256_bytes(b"".join(text_keys)), labels, config, context.engine
        )
        # Naming the sample needs no workers: theirs ~1.5 GB at 1M go before its ~2.5 GB (the stage's peak).
        context.engine.release()
    labelled = _label_all(
        context, sample, tokens, keys, embeddings[rows], labels[rows], layout[rows], sample_config, class_counts
    )
    result = labelled.result
    assignments, topics, hierarchy = expanded(
        result.topics, result.hierarchy, result.assignments["topic"].to_numpy(), labels[rows], labels, papers,
        embeddings, layout,
    )  # fmt: skip
    note = f"topics named from a sample of {len(rows):,} of the {len(papers):,} papers (label.fit_sample)"
    whole = LabelResult(assignments, topics, hierarchy, [*notes, note, *([counts_note] if counts_note else [])])
    return _Labelled(whole, labelled.phrases, None), rows, tokens


def _named_and_stable(
    context: StageContext,
    labelled: _Labelled,
    papers: pd.DataFrame,
    text_keys: list[bytes],
    embeddings: np.ndarray,
    previous: PreviousTopics | None,
    feed: dict[str, Any] | None,
    rows: np.ndarray | None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, bytes], list[str], LabelState | None]:
    """LLM names, stable ids and the audit of kept names; also the state the next update starts from.

    ``rows``: the papers the phrase index covers (a sample), None for all.
    """
    from pipeline.feed.label_update import build_state
    from pipeline.label import llm_group_names, llm_names, with_name_audit

    config, result, phrases = context.config, labelled.result, labelled.phrases
    topics = llm_names(result.topics, papers, config.label.llm, result.assignments)
    topics, hierarchy = llm_group_names(topics, result.hierarchy, papers, config.label.llm)
    topics = topics.assign(**{AUDITED: topics["name"]})  # the names the audit columns speak of
    assignments, topics, hierarchy, feed_outputs, feed_notes = _stable_ids(
        context, previous, feed, papers, embeddings, result.assignments, topics, hierarchy
    )
    # A topic that keeps its name from an earlier run is audited under that name.
    if (topics["name"] != topics[AUDITED]).any():
        audited = assignments["topic"].to_numpy()
        topics = with_name_audit(topics, phrases.text, audited if rows is None else audited[rows])
    topics = topics.drop(columns=AUDITED)
    state = None
    if labelled.counts is not None and rows is None:
        names = dict(zip(topics["topic"].astype(int).tolist(), topics["name"].astype(str).tolist(), strict=True))
        paper_ids = papers["paper_id"].astype(str).tolist()
        topic_of = assignments["topic"].to_numpy()
        state = build_state(paper_ids, text_keys, topic_of, labelled.counts, phrases.text, names)
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


STAGE = Stage(
    name="label",
    inputs=(("parse", "papers.parquet"), ("embed", "embeddings.npy"), ("cluster", "labels.npy"),
            ("cluster", "layout.npy")),
    outputs=("assignments.parquet", "topics.parquet", "hierarchy.parquet", "label.json", "metrics.json",
             *FEED_OUTPUTS),
    config_slice=_settings,
    run=run,
    module=__name__,
    extra_key=_model,
    uses_engine=True,
)  # fmt: skip
