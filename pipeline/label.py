"""Label stage: papers, embeddings and cluster labels in; topic table and paper assignments out.

BERTopic is the topic-model core, but it is fed the precomputed embeddings and clusters
(its "manual" mode: an identity reduction and ``BaseCluster`` with ``y``), so this stage
only builds topic representations: c-TF-IDF over 1- and 2-grams without English stop
words nor the boilerplate of abstracts, refined by MMR or KeyBERT-inspired re-ranking.
Topic names are built from the refined key phrases; papers are ranked within their
topic by cosine similarity to the topic's centroid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig
from pipeline.schema import OUTLIER_TOPIC, paper_texts
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
# Words start with a letter; keeps "3d"/"2024" and underscores out of topic keywords.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"

WordEmbedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class LabelResult:
    """assignments and topics follow the columns of ``pipeline.schema``."""

    assignments: pd.DataFrame
    topics: pd.DataFrame
    hierarchy: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def stop_words(config: LabelConfig) -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    extra = {word.lower() for word in config.extra_stop_words}
    return sorted(ENGLISH_STOP_WORDS | ABSTRACT_BOILERPLATE | extra)


def label_topics(
    papers: pd.DataFrame,
    embeddings: np.ndarray,
    cluster_labels: np.ndarray,
    layout: np.ndarray,
    config: LabelConfig,
    word_embedder: WordEmbedder | None,
) -> LabelResult:
    """Describe each cluster. embeddings: (n_papers, dim); cluster_labels: (n_papers,); layout: (n_papers, 2).

    ``word_embedder`` embeds key phrases for the MMR / KeyBERT-inspired refinement; it is
    required unless ``config.representation`` is "none".
    """
    texts = paper_texts(papers)
    labels, notes = np.asarray(cluster_labels, dtype=np.int64), []
    target = AUTO_MAX_TOPICS if config.n_topics == "auto" else config.n_topics
    if config.n_topics != "auto" or len(set(labels.tolist()) - {OUTLIER_TOPIC}) > target:
        labels, note = merge_to_target(labels, embeddings, target)
        notes += [note] if note else []
    if config.reduce_outliers:
        labels, note = reassign_outliers(labels, embeddings, config.outlier_percentile)
        notes += [note] if note else []
    topics_per_paper, keywords, group_words = _bertopic_keywords(texts, embeddings, labels, config, word_embedder)
    topic_ids = sorted(set(topics_per_paper.tolist()))
    centroids = {
        topic: _unit(embeddings[topics_per_paper == topic].mean(axis=0))
        for topic in topic_ids
        if topic != OUTLIER_TOPIC
    }
    scores = _scores(embeddings, topics_per_paper, centroids)
    topic_texts = {
        topic: " ".join(texts[row] for row in np.flatnonzero(topics_per_paper == topic)).casefold()
        for topic in topic_ids
        if topic != OUTLIER_TOPIC
    }
    names = _unique_names({topic: keywords.get(topic, []) for topic in topic_ids}, topic_texts, config.name_phrases)
    positions = _intertopic_positions(centroids)
    real_topics = [topic for topic in topic_ids if topic != OUTLIER_TOPIC]

    def name_group(leaves: list[int]) -> str:
        text = " ".join(topic_texts[leaf] for leaf in leaves[:20])
        return topic_name(group_words(leaves), config.name_phrases, text) or names[leaves[0]]

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


def reassign_outliers(
    labels: np.ndarray, embeddings: np.ndarray, percentile: float
) -> tuple[np.ndarray, str | None]:
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
    vectorizer = CountVectorizer(
        ngram_range=(1, config.ngram_max), stop_words=stop_words(config), token_pattern=TOKEN_PATTERN, lowercase=True
    )
    model = BERTopic(
        embedding_model=_Embedder() if representation is not None else None,
        umap_model=BaseDimensionalityReduction(),
        hdbscan_model=BaseCluster(),
        vectorizer_model=vectorizer,
        ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=True),
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


def complete_phrase(phrase: str, text: str) -> str:
    """Extend a key phrase by the word that follows it in most of its uses in `text`.

    Stop words are removed before n-grams are counted, so c-TF-IDF finds "large language"
    and "graph neural"; the topic's own text says they are "large language models" and
    "graph neural networks".
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    # A name may end in "models" ("large language models"), but not in "for" or "approach".
    excluded = (ENGLISH_STOP_WORDS | ABSTRACT_BOILERPLATE) - NAME_TAIL_WORDS
    followers = [
        word for word in re.findall(rf"\b{re.escape(phrase)} ([^\W\d_][^\W_]+)\b", text) if word not in excluded
    ]
    if not followers:
        return phrase
    best = max(set(followers), key=lambda word: (followers.count(word), word))
    return f"{phrase} {best}" if followers.count(best) * 2 > len(followers) and len(followers) >= 2 else phrase


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


def topic_name(keywords: list[str], n_phrases: int, text: str = "") -> str:
    """A short name from key phrases: 'Graph neural networks, message passing', never '3_the_of_and'.

    Multi-word phrases are preferred and completed from the topic's text; overlapping
    phrases are merged; a phrase that mostly repeats words already in the name is skipped
    ("carbon nanotubes" then "walled carbon nanotubes"); the name stays within five words.
    """
    ranked = [word for word in keywords[:8] if " " in word] + [word for word in keywords if " " not in word]
    ranked += [word for word in keywords[8:] if " " in word]
    chosen: list[str] = []
    for phrase in ranked:
        if " " in phrase and text:
            phrase = complete_phrase(phrase, text)
        merged = next(((i, m) for i, c in enumerate(chosen) if (m := _merge_overlap(c, phrase))), None)
        if merged is not None and len(merged[1].split()) <= 4:
            chosen[merged[0]] = merged[1]
            continue
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
    name = ", ".join(chosen)
    return name[0].upper() + name[1:]


def _unique_names(
    keywords: dict[int, list[tuple[str, float]]], texts: dict[int, str], n_phrases: int
) -> dict[int, str]:
    """Names for every topic, unique within the run (largest topics choose first)."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for topic in sorted(keywords, key=lambda t: (t == OUTLIER_TOPIC, t)):
        if topic == OUTLIER_TOPIC:
            names[topic] = OUTLIER_NAME
            continue
        words = [word for word, _ in keywords[topic]]
        name = topic_name(words, n_phrases, texts.get(topic, "")) or f"Topic {topic}"
        extra = n_phrases
        while name.casefold() in taken and extra < len(words):
            extra += 1
            name = topic_name(words, extra, texts.get(topic, "")) or name
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
