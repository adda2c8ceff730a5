"""Label stage: papers, embeddings and cluster labels in; topic table and paper assignments out.

The stage in order, one module each:

- ``geometry``: clusters merged to the asked topic count along the topic tree, outliers given
  to their nearest topic when close enough, centroids, each paper's cosine to its topic's
  centroid, the intertopic map and the topic tree (Ward linkage of the centroids).
- ``keywords``: c-TF-IDF keywords per topic over 1- and 2-grams without stop words nor the
  boilerplate of abstracts, from cached token ids or through BERTopic's representation models.
- ``phrases`` and ``naming``: candidate topic and group names from the noun phrases the papers'
  authors wrote, scored by coverage, lift and use in titles; ``choose`` picks names that tell
  the topics apart (no two at one level with one head phrase, nearest their own centroid, no
  fragment, specific before generic); ``names`` builds a name from the key phrases when no
  written phrase qualifies, renames topics and makes slugs.
- ``audit``: how much of each topic its name speaks for (coverage and lift of its main phrase),
  and what is wrong with it (fragment, twin, generic, far from its centroid, its centroid rank),
  as columns of the topics table and a summary for metrics.json.
- ``llm``: optional names from a local LLM server (:func:`llm_names`, and :func:`llm_group_names` for
  the groups and the tree), applied after this stage's.

``pipeline.terms`` holds the tokens and term counts that keywords and metrics share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig, RunConfig
from pipeline.files import array_to_bytes, sha256_bytes
from pipeline.label.audit import audit_of_topics, centroid_ranks, name_audit_metrics, with_name_audit
from pipeline.label.choose import group_namer, topic_names
from pipeline.label.class_counts import ClassKeywords
from pipeline.label.geometry import (
    assignments_table,
    best_papers,
    centroids_of,
    intertopic_positions,
    merge_to_target,
    paper_scores,
    reassign_outliers,
    topic_tree,
)
from pipeline.label.keywords import (
    ABSTRACT_BOILERPLATE,
    ClassWeightsOf,
    WordEmbedder,
    bertopic_keywords,
    class_weights,
    ctfidf_keywords,
    keyword_min_papers,
    keyword_min_share,
    renumber_by_size,
    stop_words,
    term_counts_for,
)
from pipeline.label.llm import LLMLabelError, check_base_url, llm_group_names, llm_names, names_from_settings
from pipeline.label.named import AUDIT_COLUMNS, Naming, NamingMemo
from pipeline.label.names import rename_topics, slugify, topic_name, writing
from pipeline.label.naming import PhraseNamer
from pipeline.label.phrases import PhraseIndex, build_phrase_index, phrase_tokens
from pipeline.schema import OUTLIER_NAME, OUTLIER_TOPIC, paper_texts
from pipeline.terms import TermCounts, TokenizedTexts, tokenize_texts

__all__ = [
    "ABSTRACT_BOILERPLATE",
    "OUTLIER_NAME",
    "LLMLabelError",
    "LabelResult",
    "audit_of_topics",
    "check_base_url",
    "class_weights",
    "keyword_min_papers",
    "keyword_min_share",
    "label_topics",
    "llm_group_names",
    "llm_names",
    "name_audit_metrics",
    "names_from_settings",
    "phrase_index",
    "reassign_outliers",
    "rename_topics",
    "slugify",
    "stop_words",
    "term_counts_for",
    "topic_name",
    "with_name_audit",
]

# label.n_topics "auto" keeps the topics HDBSCAN finds, up to this many: more than a person reads.
AUTO_MAX_TOPICS = 100
DEFAULT_SEED: int = RunConfig.model_fields["seed"].default


@dataclass(frozen=True)
class LabelResult:
    """assignments and topics follow the columns of ``pipeline.schema``."""

    assignments: pd.DataFrame
    topics: pd.DataFrame
    hierarchy: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def label_topics(
    papers: pd.DataFrame,
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    config: LabelConfig,
    word_embedder: WordEmbedder | None,
    tokens: TokenizedTexts | None = None,
    counts: TermCounts | None = None,
    class_weights_of: ClassWeightsOf | None = None,
    seed: int = DEFAULT_SEED,
    phrases: PhraseIndex | None = None,
    class_keywords: ClassKeywords | None = None,
    kept: np.ndarray | None = None,
    naming_memo: NamingMemo | None = None,
) -> LabelResult:
    """Describe each cluster. embeddings: (n_papers, dim); cluster_labels: (n_papers,); layout: (n_papers, 2).

    ``word_embedder`` embeds key phrases for the MMR / KeyBERT-inspired refinement; it is
    required unless ``config.representation`` is "none". ``tokens`` (the papers' texts
    tokenised by ``pipeline.terms.tokenize_texts``) and ``counts`` (their
    :func:`term_counts_for` matrix) may come from a cache; they are computed when absent.
    ``class_weights_of(counts, topic_per_paper)`` gives the c-TF-IDF matrix
    (:func:`class_weights`, which is the default), and may take it from a cache. ``seed``
    (the run's ``seed``) seeds the KeyBERT-inspired refinement. ``phrases`` (the papers'
    :func:`phrase_index`, which names topics) may come from a cache; it is built when absent.
    ``class_keywords``: when ``papers`` are a sample of a larger pile, the c-TF-IDF keywords per
    cluster from the term counts of all its papers (``pipeline.label.class_counts``, summed over
    parts); the keywords are those (representation "none" only), all else from ``papers``. ``kept``:
    the papers that keep the last run's placement (see :func:`merged_clusters`). ``naming_memo(parts,
    work_out, valid)`` gives the names, tree and audit (``pipeline.label.named``): ``work_out()``, or a
    kept value for what the caller keys them by and ``parts`` (the topics and centroids) that ``valid`` accepts.
    """
    if tokens is None:
        tokens = tokenize_texts(paper_texts(papers))
    if len(tokens) != len(papers):
        raise ValueError(f"{len(papers)} papers but {len(tokens)} tokenised texts")
    labels, notes = merged_clusters(cluster_labels, embeddings, config, kept)
    if class_keywords is not None:
        if config.representation != "none":
            raise ValueError("keywords from class counts are c-TF-IDF keywords: representation must be 'none'")
        topics_per_paper = renumber_by_size(labels)
        topic_of = dict(np.unique(np.stack([labels, topics_per_paper]), axis=1).T.tolist())
        if not set(topic_of) <= set(class_keywords.classes.tolist()):
            raise ValueError("the class counts do not cover the sample's clusters")
        keywords = {topic_of[label]: words for label, words in class_keywords.keywords.items() if label in topic_of}
    elif config.representation == "none":
        counts = term_counts_for(tokens, config) if counts is None else counts
        topics_per_paper, keywords, _ = ctfidf_keywords(counts, labels, config, class_weights_of)
    else:
        topics_per_paper, keywords, _ = bertopic_keywords(
            paper_texts(papers), embeddings, labels, config, word_embedder, seed
        )
    topic_ids = sorted(set(topics_per_paper.tolist()))
    real_topics = [topic for topic in topic_ids if topic != OUTLIER_TOPIC]
    centroids = centroids_of(embeddings, topics_per_paper)
    scores = paper_scores(embeddings, topics_per_paper, centroids)
    rows_of = {topic: np.flatnonzero(topics_per_paper == topic) for topic in topic_ids}
    phrases = phrase_index(papers, config) if phrases is None else phrases
    if phrases.papers.shape[0] != len(papers):
        raise ValueError(f"{len(papers)} papers but a phrase index of {phrases.papers.shape[0]}")
    words_of = {topic: [word for word, _ in keywords.get(topic, [])] for topic in topic_ids}

    def work_out() -> Naming:
        """Names, tree and audit from the phrases (the topics named from keywords recorded in ``fallback``)."""
        namer = PhraseNamer(phrases, config.name_phrases, word_embedder)
        fallback: dict[int, list[str]] = {}

        def keyword_name(topic: int) -> str:
            """The name from c-TF-IDF key phrases, for a topic that no written phrase names."""
            fallback[topic] = words_of[topic]
            name = topic_name(words_of[topic], config.name_phrases, *writing(tokens, rows_of[topic]))
            return name or f"Topic {topic}"

        names, chosen = topic_names(namer, {topic: rows_of[topic] for topic in real_topics}, keyword_name, centroids)
        names[OUTLIER_TOPIC] = OUTLIER_NAME
        name_group = group_namer(namer, real_topics, rows_of, chosen, names, lambda leaves: topic_tree(
            real_topics, centroids, config, leaves), centroids)  # fmt: skip
        hierarchy, coarse_of = topic_tree(real_topics, centroids, config, name_group)
        coarse_names = {
            group: name_group([topic for topic in real_topics if coarse_of[topic] == group])
            for group in sorted(set(coarse_of.values()))
        }
        # Whether each name is nearest its own topic: the audit's "far" fault and name_rank.
        ranks = None if word_embedder is None else centroid_ranks(word_embedder, names, centroids)
        coarse = [coarse_of.get(topic, OUTLIER_TOPIC) for topic in topic_ids]
        named = pd.DataFrame({"topic": topic_ids, "name": [names[topic] for topic in topic_ids], "coarse_topic": coarse,
                              "coarse_name": [coarse_names.get(group, OUTLIER_NAME) for group in coarse]})  # fmt: skip
        audited = with_name_audit(named, phrases.text, topics_per_paper, ranks)
        audit = {column: audited[column].tolist() for column in AUDIT_COLUMNS}
        return Naming(names, hierarchy, coarse_of, coarse_names, audit, fallback)

    if naming_memo is None:
        naming = work_out()
    else:  # kept names serve while the topics named from keywords keep their keywords
        parts = {"topics": sha256_bytes(array_to_bytes(topics_per_paper)),
                 "centroids": sha256_bytes(b"".join(array_to_bytes(centroids[t]) for t in real_topics))}  # fmt: skip
        naming = naming_memo(parts, work_out, lambda kept: all(words_of.get(t) == w for t, w in kept.fallback.items()))
    names, hierarchy, coarse_of, coarse_names = naming.names, naming.hierarchy, naming.coarse_of, naming.coarse_names
    positions = intertopic_positions(centroids)
    rows = []
    for topic in topic_ids:
        members = rows_of[topic]
        words = keywords.get(topic, [])
        x, y = positions.get(topic, (np.nan, np.nan))
        rows.append(
            {
                "topic": int(topic),
                "name": names[topic],
                "slug": slugify(names[topic]) if topic != OUTLIER_TOPIC else "outliers",
                "size": len(members),
                "keywords": [word for word, _ in words],
                "keyword_weights": [float(weight) for _, weight in words],
                "representative_ids": best_papers(papers["paper_id"], members, scores),
                "x": float(x),
                "y": float(y),
                "coarse_topic": coarse_of.get(topic, OUTLIER_TOPIC),
                "coarse_name": coarse_names.get(coarse_of.get(topic, OUTLIER_TOPIC), OUTLIER_NAME),
            }
        )
    assignments = assignments_table(papers["paper_id"], topics_per_paper, scores, layout)
    topics = pd.DataFrame(rows).assign(**{column: naming.audit[column] for column in AUDIT_COLUMNS})
    return LabelResult(assignments=assignments, topics=topics, hierarchy=hierarchy, notes=notes)


def phrase_index(papers: pd.DataFrame, config: LabelConfig) -> PhraseIndex:
    """The candidate names of the papers: what it depends on is their titles, abstracts and ``stop_words(config)``."""
    text = phrase_tokens(papers["title"].astype(str).tolist(), papers["abstract"].astype(str).tolist())
    return build_phrase_index(text, stop_words(config))


def merged_to_target(
    cluster_labels: np.ndarray, embeddings: np.ndarray, config: LabelConfig
) -> tuple[np.ndarray, str | None]:
    """The clusters merged along the topic tree to ``config.n_topics`` (auto: at most ``AUTO_MAX_TOPICS``); -1 stays.

    Returns each paper's group of clusters (numbered anew when any were merged, else the cluster
    labels themselves) and a note (None when nothing had to change).
    """
    target = AUTO_MAX_TOPICS if config.n_topics == "auto" else config.n_topics
    if config.n_topics != "auto" or len(set(cluster_labels.tolist()) - {OUTLIER_TOPIC}) > target:
        return merge_to_target(cluster_labels, embeddings, target)
    return cluster_labels, None


def merged_clusters(
    cluster_labels: np.ndarray, embeddings: np.ndarray, config: LabelConfig, kept: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """The clusters merged to the asked topic count and outliers reassigned, with notes saying what changed.

    kept: bool per paper, the papers HDBSCAN left out that keep the last run's placement
    (``pipeline.feed.label_step.keep_placements``; their label is that cluster's). They take
    their cluster's topic, but the merges, centroids and bars come from HDBSCAN's own members:
    otherwise each rerun's kept papers would move them, and other outliers with them.
    """
    labels, notes = np.asarray(cluster_labels, dtype=np.int64), []
    held = np.zeros(len(labels), dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    clusters = labels
    if held.any():
        labels = labels.copy()
        labels[held] = OUTLIER_TOPIC
    labels, note = merged_to_target(labels, embeddings, config)
    notes += [note] if note else []
    if config.reduce_outliers:
        labels, note = reassign_outliers(labels, embeddings, config.outlier_percentile, held)
        notes += [note] if note else []
    if held.any():  # each cluster's topic, read from its own members (merges move whole clusters)
        members = ~held & (clusters != OUTLIER_TOPIC)
        topic_of = dict(zip(clusters[members].tolist(), labels[members].tolist(), strict=True))
        labels[held] = [topic_of[cluster] for cluster in clusters[held].tolist()]
    return labels, notes
