"""The label stage's three paths: one input (:class:`LabelInput`), one output (:class:`LabelOutput`).

- **relabel** (``pipeline.feed.relabel``): a grown feed whose topics all keep their ids and
  names is labelled from the last run's per-topic sums;
- **full**: keywords, names, the tree and the audit from every paper's words, with the
  sub-results kept between runs (``pipeline.label.cache``) so that a label setting costs seconds;
- **sampled** (``pipeline.label.sample``): above ``label.fit_sample`` papers, the topics are
  described from a seeded sample of each topic's papers; every paper keeps its topic.

The rule (:func:`path_for`): relabel when the last run's topics were matched and nothing
blocks an update from its sums; otherwise sampled when only a sample's words are read, else
full. The full and sampled paths say in their notes what blocked the relabel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import RunConfig
from pipeline.feed.label_step import FeedKeys
from pipeline.feed.label_step import stable_ids as _stable_ids
from pipeline.files import sha256_bytes
from pipeline.label.cache import (
    FragmentAnswers,
    SpellingUses,
    cached_class_counts,
    cached_class_weights,
    cached_phrase_index,
    cached_term_counts,
    cached_tokens,
    cached_topic_sums,
    kept_answers,
    naming_memo,
    phrase_index_key,
    term_counts_key,
)
from pipeline.memo import MemoStore
from pipeline.schema import OUTLIER_TOPIC, StreamedTexts, paper_texts

if TYPE_CHECKING:
    from pipeline.config import LabelConfig
    from pipeline.engine import Engine
    from pipeline.feed.identity import PreviousTopics
    from pipeline.feed.label_update import LabelState
    from pipeline.feed.relabel import Matched, Prior
    from pipeline.label import LabelResult
    from pipeline.label.class_counts import ClassKeywords
    from pipeline.label.phrases import PhraseIndex
    from pipeline.terms import TermCounts, TokenizedTexts

# A column the topics table carries through the feed's renaming: the name its audit was made for.
AUDITED = "_audited_name"


@dataclass(frozen=True)
class LabelInput:
    """What every path gets: the papers, their vectors and clusters, the last run's topics, the stage's means.

    texts / text_keys: one per paper (``schema.paper_texts``, ``memo.text_key``); tokens: every
    paper's tokens, None when only a sample's words are read (``sample_size`` < the papers);
    embeddings: (n_papers, dim); cluster_labels: (n_papers,) int, -1 = outlier; layout:
    (n_papers, 2). previous / feed: the last run's topics and feed.json (None on a first run);
    prior / match: the last run's sums and this run's topics matched to its (None: no last run,
    or blocked before the match, when ``match`` says why).
    """

    config: RunConfig
    papers: pd.DataFrame
    texts: Sequence[str]  # a list, or made when asked for (schema.PaperTexts) on the sampled path
    text_keys: list[bytes]
    tokens: TokenizedTexts | None
    sample_size: int
    embeddings: np.ndarray
    cluster_labels: np.ndarray
    layout: np.ndarray
    previous: PreviousTopics | None
    feed: dict[str, Any] | None
    keys: FeedKeys
    cache: MemoStore
    engine: Engine
    prior: Prior | None = None
    match: Matched | None = None
    kept: np.ndarray | None = None  # bool per paper: HDBSCAN's outliers kept in last run's topic (keep_placements)


@dataclass(frozen=True)
class LabelOutput:
    """The label tables under stable ids, the feed files, notes, and the sums the next run's relabel starts from.

    rows: the papers the metrics are computed on (the sample that described the topics), None
    for all; tokens: those papers' tokens when read; sample: those papers' table.
    """

    assignments: pd.DataFrame
    topics: pd.DataFrame
    hierarchy: pd.DataFrame
    feed_outputs: dict[str, bytes]
    notes: list[str]
    state: LabelState | None
    rows: np.ndarray | None
    tokens: TokenizedTexts | None
    sample: pd.DataFrame | None = None  # the papers of ``rows``, every column (the pile may be read without texts)


def path_for(inputs: LabelInput) -> str:
    """The path that labels ``inputs`` (a key of :data:`PATHS`): see the module docstring."""
    if inputs.match is not None and inputs.match.blocker is None:
        return "relabel"
    return "full" if inputs.tokens is not None else "sampled"


def relabel(inputs: LabelInput) -> LabelOutput:
    """The update path: labelled from the last run's sums (``pipeline.feed.relabel``)."""
    from pipeline.feed.relabel import relabelled

    if inputs.prior is None or inputs.match is None or inputs.previous is None:
        raise ValueError("the relabel path needs the last run's topics and sums")
    updated = relabelled(
        inputs.match, inputs.prior, inputs.previous, inputs.feed, inputs.keys, inputs.papers, inputs.text_keys,
        inputs.embeddings, inputs.layout, inputs.config.label,
    )  # fmt: skip
    return LabelOutput(
        updated.assignments, updated.topics, updated.hierarchy, updated.feed_outputs, updated.notes, updated.state,
        None, inputs.tokens,
    )  # fmt: skip


def full(inputs: LabelInput) -> LabelOutput:
    """Every paper's words: keywords, names, tree and audit."""
    if inputs.tokens is None:
        raise ValueError("the full path needs every paper's tokens")
    labelled = _label_all(
        inputs, inputs.papers, inputs.tokens, inputs.text_keys, inputs.embeddings, inputs.cluster_labels, inputs.layout,
        kept=inputs.kept,
    )  # fmt: skip
    return _named_and_stable(inputs, labelled, None, inputs.tokens)


def sampled(inputs: LabelInput) -> LabelOutput:
    """The topics described from a sample of each topic's papers (``pipeline.label.sample``)."""
    labelled, rows, tokens, sample = _label_sampled(inputs)
    output = _named_and_stable(inputs, labelled, rows, tokens)
    return dataclasses.replace(output, sample=sample)


PATHS: dict[str, Callable[[LabelInput], LabelOutput]] = {"relabel": relabel, "full": full, "sampled": sampled}


@dataclass(frozen=True)
class _Labelled:
    """What the full path hands on to naming by LLM and stable ids: the tables, and what audits names."""

    result: LabelResult
    phrases: PhraseIndex
    counts: TermCounts | None
    counts_key: str | None = None  # the key of ``counts`` (``cache.term_counts_key``)


def _label_all(
    inputs: LabelInput,
    papers: pd.DataFrame,
    tokens: TokenizedTexts,
    text_keys: list[bytes],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    label_config: LabelConfig | None = None,
    class_keywords: ClassKeywords | None = None,
    kept: np.ndarray | None = None,
) -> _Labelled:
    """The label tables from every paper of ``papers`` (``label_config``: instead of the run's label settings).

    ``class_keywords``: the keywords per cluster from the pile's term counts, when ``papers`` are a sample of it.
    """
    from pipeline.embed import load_backend
    from pipeline.label import keyword_min_share, label_topics

    cache, config = inputs.cache, inputs.config
    label_config = label_config or config.label
    # The run's embedding backend: it weighs name phrases by meaning, and embeds key phrases for mmr/keybert.
    word_embedder = load_backend(config.embed).encode
    counts_key = term_counts_key(sha256_bytes(b"".join(text_keys)), config)
    phrases_key = phrase_index_key(papers, config)
    counts = None
    if label_config.representation == "none" and class_keywords is None:
        counts = cached_term_counts(cache, tokens, counts_key, config)
    phrases = cached_phrase_index(cache, papers, config, phrases_key)
    keep_answers = [
        kept_answers(cache, "fragments", phrases_key, phrases.text.fragments, FragmentAnswers()),
        kept_answers(cache, "spellings", phrases_key, phrases.spellings, SpellingUses()),
    ]
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
            cache, counts, counts_key, topics, label_config.reduce_frequent_words, keyword_min_share(label_config)
        ),
        seed=config.seed,
        phrases=phrases,
        class_keywords=class_keywords,
        kept=kept,
        naming_memo=naming_memo(cache, phrases_key, config, label_config),
    )
    for keep in keep_answers:
        keep()
    return _Labelled(result, phrases, counts, counts_key)


def _label_sampled(inputs: LabelInput) -> tuple[_Labelled, np.ndarray, TokenizedTexts, pd.DataFrame]:
    """The label tables of all papers, described from a sample of each topic (``pipeline.label.sample``).

    With c-TF-IDF keywords (representation "none") the keywords come from the term counts of
    all papers, counted in parts on the run's engine and summed (``pipeline.label.class_counts``).
    Returns the tables, the sampled rows, the sample's tokens and its papers (the metrics are computed on
    the sample). With the texts read from the table (``schema.StreamedTexts``), ``inputs.papers`` lacks
    the text columns: the sample's are read for its rows.
    """
    from pipeline.label import LabelResult, merged_clusters
    from pipeline.label.class_counts import keywords_of
    from pipeline.label.sample import expanded, stratified_rows
    from pipeline.parallel import return_freed_memory

    config, papers, texts, embeddings, layout = (
        inputs.config, inputs.papers, inputs.texts, inputs.embeddings, inputs.layout
    )  # fmt: skip
    labels, notes = merged_clusters(inputs.cluster_labels, embeddings, config.label, inputs.kept)
    keywords, counts_note = None, None
    if config.label.representation == "none":
        class_counts, counts_note = cached_class_counts(
            inputs.cache, texts, sha256_bytes(b"".join(inputs.text_keys)), labels, config, inputs.engine
        )
        # Naming the sample needs no workers: theirs ~1.5 GB at 1M go before its ~2.5 GB (the stage's peak).
        inputs.engine.release()
        # Its keywords now (their settings are the run's), and the summed counts let go before the sample's
        # words are read and named: they and the c-TF-IDF's copies of them are gigabytes at 1M papers.
        keywords = keywords_of(class_counts, config.label)
        del class_counts
        return_freed_memory()  # what they held goes back to the system, not kept in the heap under the naming
    rows = stratified_rows(labels, inputs.sample_size, config.seed)
    if isinstance(texts, StreamedTexts):
        sample = texts.with_texts(papers.iloc[rows], rows)
    else:
        sample = papers.iloc[rows].reset_index(drop=True)
    tokens, keys = cached_tokens(inputs.cache, paper_texts(sample))
    n_topics = len(set(labels.tolist()) - {OUTLIER_TOPIC})
    # The clusters are merged and outliers placed already, over all papers: the sample keeps them.
    sample_config = config.label.model_copy(update={"reduce_outliers": False, "n_topics": max(n_topics, 1)})
    labelled = _label_all(
        inputs, sample, tokens, keys, embeddings[rows], labels[rows], layout[rows], sample_config, keywords
    )
    result = labelled.result
    assignments, topics, hierarchy = expanded(
        result.topics, result.hierarchy, result.assignments["topic"].to_numpy(), labels[rows], labels, papers,
        embeddings, layout,
    )  # fmt: skip
    note = f"topics named from a sample of {len(rows):,} of the {len(papers):,} papers (label.fit_sample)"
    whole = LabelResult(assignments, topics, hierarchy, [*notes, note, *([counts_note] if counts_note else [])])
    return _Labelled(whole, labelled.phrases, None), rows, tokens, sample


def _named_and_stable(
    inputs: LabelInput, labelled: _Labelled, rows: np.ndarray | None, tokens: TokenizedTexts | None
) -> LabelOutput:
    """LLM names, stable ids and the audit of kept names; also the state the next update starts from.

    ``rows``: the papers the phrase index covers (a sample), None for all; ``tokens``: theirs.
    """
    from pipeline.feed.label_update import build_state
    from pipeline.label import llm_group_names, llm_names, with_name_audit

    config, result, phrases = inputs.config, labelled.result, labelled.phrases
    papers, embeddings = inputs.papers, inputs.embeddings
    embed = None
    if config.label.llm.enabled:  # the audit of the LLM's names ranks them among the topics' centroids
        from pipeline.embed import load_backend

        embed = load_backend(config.embed).encode
    topics = llm_names(result.topics, papers, config.label.llm, result.assignments, embed, embeddings)
    topics, hierarchy = llm_group_names(topics, result.hierarchy, papers, config.label.llm)
    topics = topics.assign(**{AUDITED: topics["name"]})  # the names the audit columns speak of
    assignments, topics, hierarchy, feed_outputs, feed_notes = _stable_ids(
        inputs.keys, inputs.previous, inputs.feed, papers, embeddings, result.assignments, topics, hierarchy
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
        sums = None
        if labelled.counts_key is not None:  # summed once per matrix and topics (cache.cached_topic_sums)
            sums = cached_topic_sums(inputs.cache, labelled.counts, labelled.counts_key, topic_of)
        state = build_state(paper_ids, inputs.text_keys, topic_of, labelled.counts, phrases.text, names, sums)
    # Why the relabel did not run (no note on a first run).
    blocked = [f"labelled in full: {inputs.match.blocker}"] if inputs.match is not None else []
    notes = blocked + result.notes + feed_notes
    return LabelOutput(assignments, topics, hierarchy, feed_outputs, notes, state, rows, tokens)
