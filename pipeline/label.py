"""Label stage: papers, embeddings and cluster labels in; topic table and paper assignments out.

Keywords are BERTopic's c-TF-IDF over 1- and 2-grams without English stop words nor the
boilerplate of abstracts. With ``representation: none`` (the default) it is computed from
the papers' cached token ids (``pipeline.terms``): BERTopic's own route re-tokenises every
text on each fit and imports transformers, 60 of the 130 s this stage took at 75k papers,
for the same weights (a test compares both routes). With "mmr" or "keybert" BERTopic itself
runs, fed the precomputed embeddings and clusters (its "manual" mode: an identity
reduction and ``BaseCluster`` with ``y``), and refines the keywords with its
representation models. One difference: BERTopic deletes every character but A-Za-z0-9
before counting, which glues "large-scale" into "largescale", a word no abstract holds; the
fast route splits words as the texts that NPMI scores them on are split.

Topic names are built from the key phrases, completed by the word that follows them in the
topic's papers; papers are ranked within their topic by cosine similarity to the topic's
centroid.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.config import LabelConfig
from pipeline.schema import OUTLIER_TOPIC, paper_texts
from pipeline.terms import (
    ENGLISH_STOP_WORDS,
    GREEK_LETTERS,
    TOKEN_PATTERN,
    TermCounts,
    TokenizedTexts,
    class_tfidf,
    phrase_followers,
    phrase_spellings,
    term_counts,
    token_stream,
    tokenize_texts,
)
from pipeline.topic_tree import auto_coarse_groups, cut_tree, hierarchy_table, linkage_matrix, merge_to_target

log = logging.getLogger(__name__)

# Words that every abstract uses and that say nothing about its topic. c-TF-IDF alone
# does not remove them in small corpora, where every topic is "we propose a novel method".
ABSTRACT_BOILERPLATE = frozenset(
    """
    we our us paper papers article work works study studies propose proposes proposed proposing
    approach approaches method methods methodology result results show shows showed shown
    demonstrate demonstrates demonstrated novel new state art state-of-the-art sota based using
    use used uses present presents presented introduce introduces introduced existing performance
    achieve achieves achieved achieving outperform outperforms outperforming significantly significant
    effective effectively efficient efficiently extensive experiments experimental experiment
    framework frameworks model models task tasks problem problems also however furthermore moreover
    various different several many recent recently well via including improve improves improved
    improvement improvements first second one two three paper's address addresses addressing
    able key main simple simply particular specifically respectively typically often thus
    hence existing prior previous leverage leverages leveraging enable enables enabling
    comprehensive superior remarkable promising potential widely commonly largely significantly
    """.split()
)
# Boilerplate words that may still complete a key phrase in a topic name.
NAME_TAIL_WORDS = frozenset({"model", "models"})
OUTLIER_NAME = "Unassigned papers (outliers)"
# label.n_topics "auto" keeps the topics HDBSCAN finds, up to this many: more than a person reads.
AUTO_MAX_TOPICS = 100
# Best terms per topic among which a group of topics finds its words (see _ctfidf_keywords).
# Measured at 75k papers and 100 topics: 300 sent most large groups to the exact sum over all
# 3.6M terms; 1000 rarely does, and names the tree 0.5 s faster.
GROUP_SHORTLIST = 1000
# Papers sampled per topic or group to complete its key phrases into names.
NAME_SAMPLE = 3000
# label.keyword_min_papers "auto": a keyword must occur in this many papers once the corpus
# has AUTO_KEYWORD_CORPUS papers. A word that two or three papers use is a name, a formula or
# a typo, not a topic's vocabulary; keeping such words out raised NPMI on all three labelled
# corpora measured (arxiv-kaggle-2000 0.007 -> 0.021, BBC 0.177 -> 0.185, 20 Newsgroups
# 0.161 -> 0.162). Smaller piles keep every word: there, five papers can be a whole topic.
AUTO_KEYWORD_MIN_PAPERS = 5
# label.keyword_min_share "auto": a keyword must occur in at least this share of its topic's
# papers. c-TF-IDF alone ranks high a word that a few papers repeat ("interval" and "knot", in
# 1 and 4 of 51 papers on graphs); a keyword is read as what the topic is about. Measured
# against no bar, NPMI / diversity: arxiv-kaggle-2000 (5 seeds) 0.019 / 0.896 -> 0.051 / 0.874;
# 7,701 arXiv papers 0.129 / 0.782 -> 0.143 / 0.762 (quality and preview); 74,728 papers
# 0.182 / 0.784 -> 0.189 / 0.759; the BERTopic paper's protocol, 20 Newsgroups 0.166 / 0.891
# -> 0.180 / 0.868, BBC 0.191 / 0.943 -> 0.196 / 0.941. 0.15 and 0.2 lowered diversity
# everywhere measured and NPMI at 7,701 papers.
AUTO_KEYWORD_MIN_SHARE = 0.1
# Bump when class_weights would weigh the same counts and topics differently (it keys their cache).
CLASS_WEIGHTS_VERSION = 1
AUTO_KEYWORD_CORPUS = 1000

WordEmbedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class LabelResult:
    """assignments and topics follow the columns of ``pipeline.schema``."""

    assignments: pd.DataFrame
    topics: pd.DataFrame
    hierarchy: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def keyword_min_papers(config: LabelConfig, n_papers: int) -> int:
    """The fewest papers a keyword must occur in (``label.keyword_min_papers``, "auto" by corpus size)."""
    if config.keyword_min_papers != "auto":
        return config.keyword_min_papers
    return AUTO_KEYWORD_MIN_PAPERS if n_papers >= AUTO_KEYWORD_CORPUS else 1


def keyword_min_share(config: LabelConfig) -> float:
    """The least share of a topic's papers its keywords occur in (``label.keyword_min_share``).

    "auto" is AUTO_KEYWORD_MIN_SHARE on the c-TF-IDF route and 0 with a BERTopic representation
    model, which cannot count papers per topic (the config refuses a share there).
    """
    if config.keyword_min_share != "auto":
        return config.keyword_min_share
    return AUTO_KEYWORD_MIN_SHARE if config.representation == "none" else 0.0


def stop_words(config: LabelConfig) -> list[str]:
    extra = {word.lower() for word in config.extra_stop_words}
    return sorted(ENGLISH_STOP_WORDS | ABSTRACT_BOILERPLATE | extra)


def label_topics(
    papers: pd.DataFrame,
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    config: LabelConfig,
    word_embedder: WordEmbedder | None,
    tokens: TokenizedTexts | None = None,
    counts: TermCounts | None = None,
    class_weights_of: Callable[[TermCounts, np.ndarray], sparse.csr_matrix] | None = None,
) -> LabelResult:
    """Describe each cluster. embeddings: (n_papers, dim); cluster_labels: (n_papers,); layout: (n_papers, 2).

    ``word_embedder`` embeds key phrases for the MMR / KeyBERT-inspired refinement; it is
    required unless ``config.representation`` is "none". ``tokens`` (the papers' texts
    tokenised by ``pipeline.terms.tokenize_texts``) and ``counts`` (their
    :func:`term_counts_for` matrix) may come from a cache; they are computed when absent.
    ``class_weights_of(counts, topic_per_paper)`` gives the c-TF-IDF matrix
    (:func:`class_weights`, which is the default), and may take it from a cache.
    """
    if tokens is None:
        tokens = tokenize_texts(paper_texts(papers))
    if len(tokens) != len(papers):
        raise ValueError(f"{len(papers)} papers but {len(tokens)} tokenised texts")
    labels, notes = np.asarray(cluster_labels, dtype=np.int64), []
    target = AUTO_MAX_TOPICS if config.n_topics == "auto" else config.n_topics
    if config.n_topics != "auto" or len(set(labels.tolist()) - {OUTLIER_TOPIC}) > target:
        labels, note = merge_to_target(labels, embeddings, target)
        notes += [note] if note else []
    if config.reduce_outliers:
        labels, note = reassign_outliers(labels, embeddings, config.outlier_percentile)
        notes += [note] if note else []
    if config.representation == "none":
        counts = term_counts_for(tokens, config) if counts is None else counts
        topics_per_paper, keywords, group_words = _ctfidf_keywords(counts, labels, config, class_weights_of)
    else:
        topics_per_paper, keywords, group_words = _bertopic_keywords(
            paper_texts(papers), embeddings, labels, config, word_embedder
        )
    topic_ids = sorted(set(topics_per_paper.tolist()))
    centroids = {
        topic: _unit(embeddings[topics_per_paper == topic].mean(axis=0))
        for topic in topic_ids
        if topic != OUTLIER_TOPIC
    }
    scores = _scores(embeddings, topics_per_paper, centroids)
    rows_of = {topic: np.flatnonzero(topics_per_paper == topic) for topic in topic_ids}

    def writing(rows: np.ndarray) -> tuple[Callable[[str], str], Callable[[str], bool]]:
        """How the texts ``rows`` write key phrases: a phrase completed, and whether a phrase is written."""
        # Counted on a sample of at most NAME_SAMPLE papers: a majority vote needs no more, and
        # the tree's root group holds every paper.
        sample = rows[:: max(1, -(-len(rows) // NAME_SAMPLE))]
        stream = functools.cache(lambda: token_stream(tokens, sample))  # built once, when a phrase needs it

        def name_phrase(phrase: str) -> str:
            spelled = spell_phrase(phrase, phrase_spellings(tokens, sample, phrase.split(), stream()))
            return complete_phrase(spelled, phrase_followers(tokens, sample, spelled.split(), stream()))

        def written(phrase: str) -> bool:
            words = phrase.split()
            return words[-1] in phrase_followers(tokens, sample, words[:-1], stream())

        return name_phrase, written

    names = _unique_names(
        {topic: keywords.get(topic, []) for topic in topic_ids},
        {topic: writing(rows_of[topic]) for topic in topic_ids if topic != OUTLIER_TOPIC},
        config.name_phrases,
    )
    positions = _intertopic_positions(centroids)
    real_topics = [topic for topic in topic_ids if topic != OUTLIER_TOPIC]

    def name_group(leaves: list[int]) -> str:
        rows = np.sort(np.concatenate([rows_of[leaf] for leaf in leaves]))
        return topic_name(group_words(leaves), config.name_phrases, *writing(rows)) or names[leaves[0]]

    hierarchy, coarse_of = _hierarchy(real_topics, centroids, config, name_group)
    coarse_names = {
        group: name_group([topic for topic in real_topics if coarse_of[topic] == group])
        for group in sorted(set(coarse_of.values()))
    }
    rows = []
    for topic in topic_ids:
        members = np.flatnonzero(topics_per_paper == topic)
        ranked = members[np.lexsort((members, -scores[members]))]  # best first; ties by input order
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
                "representative_ids": papers["paper_id"].iloc[ranked[:10]].tolist(),
                "x": float(x),
                "y": float(y),
                "coarse_topic": coarse_of.get(topic, OUTLIER_TOPIC),
                "coarse_name": coarse_names.get(coarse_of.get(topic, OUTLIER_TOPIC), OUTLIER_NAME),
            }
        )
    assignments = pd.DataFrame(
        {
            "paper_id": papers["paper_id"].astype("string"),
            "topic": topics_per_paper.astype(np.int64),
            "score": scores.astype(np.float64),
            "x": layout[:, 0].astype(np.float64),
            "y": layout[:, 1].astype(np.float64),
        }
    )
    return LabelResult(assignments=assignments, topics=pd.DataFrame(rows), hierarchy=hierarchy, notes=notes)


def reassign_outliers(labels: np.ndarray, embeddings: np.ndarray, percentile: float) -> tuple[np.ndarray, str | None]:
    """Give each outlier to its nearest topic when it is close enough to belong there.

    "Close enough": its cosine to the topic's centroid is at least that of the topic's own
    `percentile`% least typical papers. The bar is set per topic by the topic itself, so it
    needs no tuning per corpus or embedding model, and a paper far from every topic stays -1.
    labels: ndarray (n_papers,); embeddings: ndarray (n_papers, dim), unit rows.
    """
    outliers = np.flatnonzero(labels == OUTLIER_TOPIC)
    cluster_ids = sorted(set(labels.tolist()) - {OUTLIER_TOPIC})
    if outliers.size == 0 or not cluster_ids:
        return labels, None
    centroids = np.stack([_unit(embeddings[labels == cluster].mean(axis=0)) for cluster in cluster_ids])
    bars = np.array(
        [np.percentile(embeddings[labels == cluster] @ centroid, percentile) for cluster, centroid in zip(
            cluster_ids, centroids, strict=True)]
    )  # fmt: skip
    similarity = embeddings[outliers] @ centroids.T
    nearest = similarity.argmax(axis=1)
    accepted = similarity[np.arange(outliers.size), nearest] >= bars[nearest]
    relabelled = labels.copy()
    relabelled[outliers[accepted]] = np.asarray(cluster_ids)[nearest[accepted]]
    note = (
        f"{int(accepted.sum())} of {outliers.size} outliers joined their nearest topic "
        f"(at least as close as its {percentile:g}% least typical papers); {int((~accepted).sum())} stay unassigned"
    )
    return relabelled, note


def _hierarchy(
    topic_ids: list[int], centroids: dict[int, np.ndarray], config: LabelConfig, name_group: Callable[[list[int]], str]
) -> tuple[pd.DataFrame, dict[int, int]]:
    """The merge table of the topics and each topic's group at the coarse level."""
    if len(topic_ids) < 2:
        return hierarchy_table(topic_ids, np.zeros((0, 4)), name_group), dict.fromkeys(topic_ids, 0)
    linkage = linkage_matrix(np.stack([centroids[topic] for topic in topic_ids]))
    n_groups = auto_coarse_groups(len(topic_ids)) if config.coarse_topics == "auto" else config.coarse_topics
    return hierarchy_table(topic_ids, linkage, name_group), cut_tree(topic_ids, linkage, n_groups)


def term_counts_for(tokens: TokenizedTexts, config: LabelConfig) -> TermCounts:
    """The document-term matrix c-TF-IDF counts: 1- to ``ngram_max``-grams without stop words."""
    return term_counts(tokens, stop_words(config), config.ngram_max)


def class_weights(
    counts: TermCounts, topic_per_paper: np.ndarray, reduce_frequent_words: bool = True, min_topic_share: float = 0.0
) -> sparse.csr_matrix:
    """c-TF-IDF, ndarray-like of shape (n_topics, n_terms): one row per topic id in sorted order (-1 first).

    A term held by fewer than ``min_topic_share`` of a topic's papers weighs 0 in that topic's row.
    """
    classes = np.unique(topic_per_paper)
    # Integer ones, as the counts: a float membership matrix makes scipy copy every count to float first.
    membership = sparse.csr_matrix(
        (
            np.ones(len(topic_per_paper), dtype=counts.matrix.dtype),
            (np.searchsorted(classes, topic_per_paper), np.arange(len(topic_per_paper))),
        ),
        shape=(len(classes), len(topic_per_paper)),
    )
    class_counts = membership @ counts.matrix
    weights = class_tfidf(class_counts, reduce_frequent_words)
    if min_topic_share > 0:
        weights = _without_rare_in_topic(weights, membership, counts.matrix, min_topic_share)
    return weights


def _without_rare_in_topic(
    weights: sparse.csr_matrix, membership: sparse.csr_matrix, matrix: sparse.csr_matrix, min_share: float
) -> sparse.csr_matrix:
    """``weights`` with 0 where a term is in fewer than ``min_share`` of the topic's papers."""
    present = sparse.csr_matrix((np.ones_like(matrix.data), matrix.indices, matrix.indptr), shape=matrix.shape)
    papers_with = membership @ present  # (n_topics, n_terms): how many of each topic's papers hold the term
    papers_with.sort_indices()
    weights.sort_indices()
    # Both products multiply the same membership by matrices of one sparsity pattern: same entries.
    same_entries = np.array_equal(papers_with.indptr, weights.indptr) and np.array_equal(
        papers_with.indices, weights.indices
    )
    if not same_entries:
        raise RuntimeError("c-TF-IDF and paper counts differ in their entries")
    sizes = np.asarray(membership.sum(axis=1)).ravel()
    row_of_value = np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))
    weights.data[papers_with.data < min_share * sizes[row_of_value]] = 0.0
    weights.eliminate_zeros()
    return weights


def _ctfidf_keywords(
    counts: TermCounts,
    cluster_labels: np.ndarray,
    config: LabelConfig,
    class_weights_of: Callable[[TermCounts, np.ndarray], sparse.csr_matrix] | None = None,
) -> tuple[np.ndarray, dict[int, list[tuple[str, float]]], Callable[[list[int]], list[str]]]:
    """What ``_bertopic_keywords`` returns with representation "none", from a cached count matrix.

    BERTopic's own route tokenises every text again for each fit (45 s of a 75k-paper label
    stage); its c-TF-IDF is reproduced by ``pipeline.terms.class_tfidf`` (a test compares the
    keywords of both routes). Ties in weight go to the term with the lower id.
    """
    topics = _renumber_by_size(np.asarray(cluster_labels))
    classes = np.unique(topics)  # -1 first when present: BERTopic weighs outliers as a class too
    if counts.matrix.shape[1] == 0:
        log.warning("no keyword survived the stop words; topics are left without keywords")
        return topics, {}, lambda _leaves: []
    if class_weights_of is None:
        class_weights_of = functools.partial(
            class_weights,
            reduce_frequent_words=config.reduce_frequent_words,
            min_topic_share=keyword_min_share(config),
        )
    weights = class_weights_of(counts, topics)
    min_papers = keyword_min_papers(config, len(topics))
    if min_papers > 1:
        # Terms in too few papers weigh 0, so that no topic or group picks them (see keyword_min_papers).
        papers_with = np.bincount(counts.matrix.indices, minlength=counts.matrix.shape[1])
        weights.data[papers_with[weights.indices] < min_papers] = 0.0
        weights.eliminate_zeros()
    row_of = {int(topic): row for row, topic in enumerate(classes)}

    def best_terms(scores: np.ndarray, term_ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        keep = scores > 0
        if keep.sum() > n:  # the top n by a partition, not a sort of millions of terms
            keep &= scores >= np.partition(scores, -n)[-n]
        scores, term_ids = scores[keep], term_ids[keep]
        order = np.lexsort((term_ids, -scores))[:n]
        return term_ids[order], scores[order]

    keywords, shortlist, floor = {}, [], np.zeros(len(classes))
    for topic, row in row_of.items():
        values = weights.getrow(row)
        # The keywords are the head of the shortlist (both ranked the same way): one partition per topic.
        top_ids, top_scores = best_terms(values.data, values.indices, max(GROUP_SHORTLIST, config.n_keywords))
        term_ids, scores = top_ids[: config.n_keywords], top_scores[: config.n_keywords]
        keywords[topic] = list(zip(counts.names(term_ids.tolist()), scores.tolist(), strict=True))
        top_ids, top_scores = top_ids[:GROUP_SHORTLIST], top_scores[:GROUP_SHORTLIST]
        shortlist.append(top_ids)
        floor[row] = top_scores[-1] if len(top_ids) == GROUP_SHORTLIST else 0.0
    # Group names sum their leaves' weights. Summing rows of millions of terms 70 times costs
    # seconds, so sums are taken over the union of every topic's best GROUP_SHORTLIST terms; a
    # term outside it weighs at most sum(size * floor) in a group, and the exact sum over all
    # terms is taken in the rare group where that bound reaches into the top words.
    candidates = np.unique(np.concatenate(shortlist)) if shortlist else np.zeros(0, dtype=np.int64)
    candidate_weights = weights[:, candidates].toarray()
    sizes = np.array([np.sum(topics == topic) for topic in classes], dtype=np.float64)

    def group_words(leaves: list[int]) -> list[str]:
        # Rows are weighted by topic size: a group of 600 astronomy and 25 neutrino papers is about stars.
        rows = [row_of[leaf] for leaf in leaves]
        summed = sizes[rows] @ candidate_weights[rows]
        term_ids, scores = best_terms(summed, candidates, config.n_keywords)
        if len(term_ids) < config.n_keywords or scores[-1] <= sizes[rows] @ floor[rows]:
            every = np.asarray(weights[rows].T @ sizes[rows]).ravel()
            term_ids, _ = best_terms(every, np.arange(len(every)), config.n_keywords)
        return counts.names(term_ids.tolist())

    return topics, keywords, group_words


def _bertopic_keywords(
    texts: list[str],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    config: LabelConfig,
    word_embedder: WordEmbedder | None,
) -> tuple[np.ndarray, dict[int, list[tuple[str, float]]], Callable[[list[int]], list[str]]]:
    """Topic per paper (renumbered by size), each topic's (word, weight) list, and group words.

    The third value gives the top c-TF-IDF words of a group of topics (for hierarchy names).
    """
    from bertopic import BERTopic
    from bertopic.backend import BaseEmbedder
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction
    from bertopic.representation import KeyBERTInspired, MaximalMarginalRelevance
    from bertopic.vectorizers import ClassTfidfTransformer
    from sklearn.feature_extraction.text import CountVectorizer

    class _Embedder(BaseEmbedder):
        def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
            if word_embedder is None:
                raise RuntimeError("label.representation needs a word embedder")
            return word_embedder(list(documents))

    representation = {
        "mmr": lambda: MaximalMarginalRelevance(diversity=config.mmr_diversity, top_n_words=config.n_keywords),
        "keybert": lambda: KeyBERTInspired(top_n_words=config.n_keywords, random_state=42),
        "none": lambda: None,
    }[config.representation]()
    excluded = stop_words(config)
    min_papers = keyword_min_papers(config, len(texts))
    if min_papers > 1:
        # BERTopic counts words over one joined document per topic, so CountVectorizer's min_df
        # would count topics, not papers: words in too few papers become stop words instead.
        tokens = tokenize_texts(texts)
        pairs = np.unique(np.stack([tokens.text_of_token(), tokens.tokens]), axis=1)
        papers_with = np.bincount(pairs[1], minlength=len(tokens.vocabulary))
        excluded = sorted(set(excluded) | set(tokens.vocabulary[papers_with < min_papers].tolist()))
    vectorizer = CountVectorizer(
        ngram_range=(1, config.ngram_max), stop_words=excluded, token_pattern=TOKEN_PATTERN, lowercase=True
    )
    model = BERTopic(
        embedding_model=_Embedder() if representation is not None else None,
        umap_model=BaseDimensionalityReduction(),
        hdbscan_model=BaseCluster(),
        vectorizer_model=vectorizer,
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=config.reduce_frequent_words),
        representation_model=representation,
        top_n_words=config.n_keywords,
        calculate_probabilities=False,
    )
    try:
        topics = model.fit_transform(texts, embeddings=embeddings, y=np.asarray(cluster_labels))[0]
    except (ValueError, TypeError) as exc:
        # No word, or a single word, survives the stop words (a pile of boilerplate titles):
        # CountVectorizer raises on an empty vocabulary and BERTopic's c-TF-IDF on a one-word
        # one. The clusters stand, they only get no keywords. Any other error is a bug.
        vocabulary = getattr(vectorizer, "vocabulary_", None)
        if "empty vocabulary" not in str(exc) and (vocabulary is None or len(vocabulary) > 1):
            raise
        log.warning("at most one keyword survived the stop words; topics are left without keywords")
        return _renumber_by_size(np.asarray(cluster_labels)), {}, lambda _leaves: []
    keywords = {
        int(topic): [(word, float(weight)) for word, weight in (model.get_topic(topic) or []) if word]
        for topic in set(topics)
    }
    vocabulary = model.vectorizer_model.get_feature_names_out()
    weights = model.c_tf_idf_
    row_of = {topic: topic + model._outliers for topic in set(topics)}

    sizes = {topic: int(np.sum(np.asarray(topics) == topic)) for topic in set(topics)}

    def group_words(leaves: list[int]) -> list[str]:
        # Rows are weighted by topic size: a group of 600 astronomy and 25 neutrino papers is about stars.
        leaf_weights = np.array([sizes[leaf] for leaf in leaves], dtype=np.float64)
        summed = np.asarray(weights[[row_of[leaf] for leaf in leaves]].T @ leaf_weights).ravel()
        return [str(vocabulary[index]) for index in np.argsort(-summed, kind="stable")[: config.n_keywords]]

    return np.asarray(topics, dtype=np.int64), keywords, group_words


def _renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Topic 0 is the largest, as in BERTopic; -1 stays -1."""
    ids, counts = np.unique(labels[labels != OUTLIER_TOPIC], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    mapping[OUTLIER_TOPIC] = OUTLIER_TOPIC
    return np.array([mapping[int(label)] for label in labels], dtype=np.int64)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def _scores(embeddings: np.ndarray, topics: np.ndarray, centroids: dict[int, np.ndarray]) -> np.ndarray:
    """Cosine of each paper to its topic's centroid; an outlier gets its best cosine to any topic."""
    scores = np.zeros(len(topics), dtype=np.float64)
    if not centroids:
        return scores
    ids = list(centroids)
    similarity = embeddings @ np.stack([centroids[topic] for topic in ids]).T
    column = {topic: index for index, topic in enumerate(ids)}
    for row, topic in enumerate(topics.tolist()):
        scores[row] = similarity[row].max() if topic == OUTLIER_TOPIC else similarity[row, column[topic]]
    return np.round(scores, 6)  # rounded so that CSVs are byte-identical across machines


def _intertopic_positions(centroids: dict[int, np.ndarray]) -> dict[int, tuple[float, float]]:
    """2-D positions of topics from a PCA of their centroids: close topics sit close."""
    ids = sorted(centroids)
    if len(ids) == 0:
        return {}
    if len(ids) == 1:
        return {ids[0]: (0.0, 0.0)}
    matrix = np.stack([centroids[topic] for topic in ids])
    centred = matrix - matrix.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((len(ids), 2))
    width = min(2, len(singular))
    coords[:, :width] = left[:, :width] * singular[:width]
    coords *= np.where(coords[np.abs(coords).argmax(axis=0), range(2)] < 0, -1, 1)  # stable orientation
    return {topic: (float(round(x, 6)), float(round(y, 6))) for topic, (x, y) in zip(ids, coords, strict=True)}


def spell_phrase(phrase: str, spellings: Counter[str]) -> str:
    """The key phrase as the topic's texts write it: "chain thought" -> "chain of thought".

    ``spellings`` (``pipeline.terms.phrase_spellings``) counts the phrase as found and with one
    word between its words; the most used form wins when that word is a stop word (the only
    kind the n-grams skipped) and it is used at least twice and more often than the phrase as found.
    """
    written = spellings.get(phrase, 0)
    gapped = {form: n for form, n in spellings.items() if form != phrase and form.split()[1] in ENGLISH_STOP_WORDS}
    if not gapped:
        return phrase
    best = max(gapped, key=lambda form: (gapped[form], form))
    return best if gapped[best] >= 2 and gapped[best] > written else phrase


def complete_phrase(phrase: str, followers: list[str]) -> str:
    """Extend a key phrase by the word that follows it in most of its uses.

    Stop words are removed before n-grams are counted, so c-TF-IDF finds "large language"
    and "graph neural"; the words that follow them in the topic's texts (``followers``, see
    ``pipeline.terms.phrase_followers``) say they are "large language models" and "graph
    neural networks".
    """
    # A name may end in "models" ("large language models"), but not in "for" or "approach".
    excluded = (ENGLISH_STOP_WORDS | ABSTRACT_BOILERPLATE) - NAME_TAIL_WORDS
    words = phrase.split()
    uses = Counter(followers)
    # Nor in a word it already holds: "remote photoplethysmography remote" (the next sentence's start).
    uses = Counter(
        {
            word: n
            for word, n in uses.items()
            if word not in excluded and word not in words and not _abbreviates(word, words)
        }
    )
    total = uses.total()
    if not total:
        return phrase
    best = max(uses, key=lambda word: (uses[word], word))
    return f"{phrase} {best}" if uses[best] * 2 > total and total >= 2 else phrase


def _without_own_abbreviation(phrase: str) -> str:
    """Drop a merged key phrase's own abbreviation: "graph neural networks gnns" -> "graph neural networks"."""
    words = phrase.split()
    return " ".join(words[:-1]) if len(words) > 2 and _abbreviates(words[-1], words[:-1]) else phrase


def _abbreviates(word: str, phrase_words: list[str]) -> bool:
    """Whether ``word`` is the phrase's own abbreviation, as in "reinforcement learning (RL)".

    Abstracts spell a term out and then abbreviate it, so the abbreviation is often the
    word that follows the phrase: "reinforcement learning rl", "uncertainty quantification
    uq", "multimodal large language mllms" are not names a person writes. An abbreviation
    here starts or ends with the initials of the phrase's words (plural "s" aside) and has
    at most two letters more ("training quantization" -> "ptq", post-training quantisation),
    or, up to 5 letters, takes its letters in order from the phrase's last words, the first
    being a word's first letter and the last in a later word: "vits" (vision transformers),
    "saes" (sparse autoencoders), "reid" (re identification).
    """
    initials = "".join(word[0] for word in phrase_words if word)
    core = word[:-1] if len(word) > 2 and word.endswith("s") else word
    if len(initials) >= 2 and len(core) <= len(initials) + 2 and (core.startswith(initials) or core.endswith(initials)):
        return True
    if not 2 <= len(core) <= 5:
        return False
    for index, first in enumerate(phrase_words[:-1]):
        later = "".join(phrase_words[index + 1 :])
        if first and core[0] == first[0] and core[-1] in later and _in_order(core[1:], first[1:] + later):
            return True
    return False


def _in_order(letters: str, text: str) -> bool:
    """Whether ``letters`` occur in ``text`` in this order, not necessarily adjacent."""
    remaining = iter(text)
    return all(letter in remaining for letter in letters)


def _word_stem(word: str) -> str:
    """Singular and plural count as the same word when deciding what a name already says."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _merge_overlap(first: str, second: str) -> str | None:
    """'bose einstein' + 'einstein condensates' -> 'bose einstein condensates', else None."""
    left, right = first.split(), second.split()
    if len(left) > 1 and len(right) > 1 and _word_stem(left[-1]) == _word_stem(right[0]):
        return " ".join(left + right[1:])
    if len(left) > 1 and len(right) > 1 and _word_stem(right[-1]) == _word_stem(left[0]):
        return " ".join(right + left[1:])
    return None


def topic_name(
    keywords: list[str],
    n_phrases: int,
    complete: Callable[[str], str] | None = None,
    written: Callable[[str], bool] | None = None,
) -> str:
    """A short name from key phrases: 'Graph neural networks, message passing', never '3_the_of_and'.

    Multi-word phrases are preferred and completed by ``complete`` (from the topic's texts); overlapping
    phrases are merged when ``written`` says the texts write the merged phrase ("long context" and
    "context learning", from in-context learning, are no "long context learning"); a phrase that
    mostly repeats words already in the name is skipped ("carbon nanotubes" then "walled carbon
    nanotubes"); the name stays within five words.
    """
    # Two-letter words come last: mostly abbreviations a reader cannot expand ("lr", "vi", "ke"),
    # but Greek letters name particles ("pi", "mu").
    singles = [word for word in keywords if " " not in word]
    cryptic = {word for word in singles if len(word) <= 2 and word not in GREEK_LETTERS}
    ranked = [word for word in keywords[:8] if " " in word] + [word for word in singles if word not in cryptic]
    ranked += [word for word in keywords[8:] if " " in word] + [word for word in singles if word in cryptic]
    chosen: list[str] = []
    for phrase in ranked:
        if " " in phrase and complete is not None:
            phrase = complete(phrase)
        merged = next(((i, m) for i, c in enumerate(chosen) if (m := _merge_overlap(c, phrase))), None)
        if merged is not None and len(merged[1].split()) <= 4 and (written is None or written(merged[1])):
            chosen[merged[0]] = merged[1]
            continue
        if " " not in phrase and any(_abbreviates(phrase, name.split()) for name in chosen):
            continue  # "Vision transformers, vit" says one thing twice
        covered = {_word_stem(word) for name in chosen for word in name.split()}
        stems = [_word_stem(word) for word in phrase.split()]
        if sum(stem in covered for stem in stems) * 2 >= len(stems):
            continue
        if sum(len(name.split()) for name in chosen) + len(stems) > 5:
            continue
        chosen.append(phrase)
        if len(chosen) >= n_phrases and sum(len(name.split()) for name in chosen) >= 2:
            break
    if not chosen:
        return ""
    name = ", ".join(_without_own_abbreviation(phrase) for phrase in chosen)
    return name[0].upper() + name[1:]


def _unique_names(
    keywords: dict[int, list[tuple[str, float]]],
    writings: dict[int, tuple[Callable[[str], str], Callable[[str], bool]]],
    n_phrases: int,
) -> dict[int, str]:
    """Names for every topic, unique within the run (largest topics choose first).

    ``writings``: per topic, how its texts complete a key phrase and whether they write one
    (the ``complete`` and ``written`` of :func:`topic_name`).
    """
    names: dict[int, str] = {}
    taken: set[str] = set()
    for topic in sorted(keywords, key=lambda t: (t == OUTLIER_TOPIC, t)):
        if topic == OUTLIER_TOPIC:
            names[topic] = OUTLIER_NAME
            continue
        words = [word for word, _ in keywords[topic]]
        name = topic_name(words, n_phrases, *writings.get(topic, (None, None))) or f"Topic {topic}"
        extra = n_phrases
        while name.casefold() in taken and extra < len(words):
            extra += 1
            name = topic_name(words, extra, *writings.get(topic, (None, None))) or name
        if name.casefold() in taken:
            name = f"{name} ({topic})"
        names[topic] = name
        taken.add(name.casefold())
    return names


def rename_topics(topics: pd.DataFrame, new_names: dict[int, str]) -> pd.DataFrame:
    """The topics table with names replaced (e.g. by an LLM), kept unique, slugs rebuilt."""
    renamed = topics.copy()
    taken: set[str] = set()
    for row in renamed.itertuples():
        if row.topic == OUTLIER_TOPIC or row.topic not in new_names:
            taken.add(row.name.casefold())
    for index, row in renamed.iterrows():
        if row["topic"] == OUTLIER_TOPIC or row["topic"] not in new_names:
            continue
        name = new_names[row["topic"]]
        if name.casefold() in taken:
            name = f"{name} ({row['topic']})"
        taken.add(name.casefold())
        renamed.at[index, "name"] = name
        renamed.at[index, "slug"] = slugify(name)
    return renamed


def slugify(name: str, max_length: int = 40) -> str:
    """A file-name-safe slug of [a-z0-9-] only: a topic name can never become a path."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    return slug[:max_length].rstrip("-") or "topic"
