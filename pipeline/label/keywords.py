"""Keywords of topics: stop words, keyword thresholds, c-TF-IDF and the BERTopic route.

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
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
from scipy import sparse

from pipeline.config import LabelConfig
from pipeline.schema import OUTLIER_TOPIC
from pipeline.terms import (
    ENGLISH_STOP_WORDS,
    TOKEN_PATTERN,
    TermCounts,
    TokenizedTexts,
    class_tfidf,
    term_counts,
    tokenize_texts,
)

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
# Best terms per topic among which a group of topics finds its words (see ctfidf_keywords).
# Measured at 75k papers and 100 topics: 300 sent most large groups to the exact sum over all
# 3.6M terms; 1000 rarely does, and names the tree 0.5 s faster.
GROUP_SHORTLIST = 1000
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
AUTO_KEYWORD_CORPUS = 1000

WordEmbedder = Callable[[list[str]], np.ndarray]
ClassWeightsOf = Callable[[TermCounts, np.ndarray], sparse.csr_matrix]
# Topic per paper (renumbered by size), each topic's (word, weight) list, and the top words of a group of topics.
Keywords = tuple[np.ndarray, dict[int, list[tuple[str, float]]], Callable[[list[int]], list[str]]]


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
    return rare_in_topic_dropped(weights, papers_with, np.asarray(membership.sum(axis=1)).ravel(), min_share)


def rare_in_topic_dropped(
    weights: sparse.csr_matrix, papers_with: sparse.csr_matrix, sizes: np.ndarray, min_share: float
) -> sparse.csr_matrix:
    """``weights`` with 0 where a term is in fewer than ``min_share`` of the topic's papers.

    papers_with: (n_topics, n_terms), how many of each topic's papers hold each term, with the
    entries of ``weights``; sizes: each topic's papers.
    """
    papers_with.sort_indices()
    weights.sort_indices()
    # Both products multiply the same membership by matrices of one sparsity pattern: same entries.
    same_entries = np.array_equal(papers_with.indptr, weights.indptr) and np.array_equal(
        papers_with.indices, weights.indices
    )
    if not same_entries:
        raise RuntimeError("c-TF-IDF and paper counts differ in their entries")
    row_of_value = np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))
    weights.data[papers_with.data < min_share * sizes[row_of_value]] = 0.0
    weights.eliminate_zeros()
    return weights


def best_terms(scores: np.ndarray, term_ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` terms of highest positive score, best first, ties to the lower term id; and their scores."""
    keep = scores > 0
    if keep.sum() > n:  # the top n by a partition, not a sort of millions of terms
        keep &= scores >= np.partition(scores, -n)[-n]
    scores, term_ids = scores[keep], term_ids[keep]
    order = np.lexsort((term_ids, -scores))[:n]
    return term_ids[order], scores[order]


def without_rare_terms(weights: sparse.csr_matrix, papers_with: np.ndarray, min_papers: int) -> None:
    """Weigh 0, in place, the terms fewer than ``min_papers`` papers hold (papers_with: per term)."""
    if min_papers > 1:
        weights.data[papers_with[weights.indices] < min_papers] = 0.0
        weights.eliminate_zeros()


def ctfidf_keywords(
    counts: TermCounts,
    cluster_labels: np.ndarray,
    config: LabelConfig,
    class_weights_of: ClassWeightsOf | None = None,
) -> Keywords:
    """What ``bertopic_keywords`` returns with representation "none", from a cached count matrix.

    BERTopic's own route tokenises every text again for each fit (45 s of a 75k-paper label
    stage); its c-TF-IDF is reproduced by ``pipeline.terms.class_tfidf`` (a test compares the
    keywords of both routes). Ties in weight go to the term with the lower id.
    """
    topics = renumber_by_size(np.asarray(cluster_labels))
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
        without_rare_terms(weights, np.bincount(counts.matrix.indices, minlength=counts.matrix.shape[1]), min_papers)
    row_of = {int(topic): row for row, topic in enumerate(classes)}

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


def bertopic_keywords(
    texts: list[str],
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    config: LabelConfig,
    word_embedder: WordEmbedder | None,
    seed: int,
) -> Keywords:
    """Topic per paper (renumbered by size), each topic's (word, weight) list, and group words.

    The third value gives the top c-TF-IDF words of a group of topics (for hierarchy names).
    ``seed`` seeds the KeyBERT-inspired refinement's sampling of representative papers.
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
        "keybert": lambda: KeyBERTInspired(top_n_words=config.n_keywords, random_state=seed),
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
        return renumber_by_size(np.asarray(cluster_labels)), {}, lambda _leaves: []
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


def renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Topic 0 is the largest, as in BERTopic; -1 stays -1."""
    ids, counts = np.unique(labels[labels != OUTLIER_TOPIC], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    mapping[OUTLIER_TOPIC] = OUTLIER_TOPIC
    return np.array([mapping[int(label)] for label in labels], dtype=np.int64)
