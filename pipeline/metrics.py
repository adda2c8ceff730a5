"""Topic-quality metrics: coherence, diversity, outliers and agreement with known labels.

Pure functions, no I/O. Coherence and diversity follow OCTIS, the toolkit the BERTopic
paper (Grootendorst, 2022) evaluated with:

- **NPMI**: gensim's ``CoherenceModel(coherence="c_npmi", topn=10)`` over the tokenised
  texts, with ``Dictionary(tokenised_texts)`` and ``processes=1``, as OCTIS' ``Coherence``
  calls it: sliding windows of 10 tokens, NPMI of every pair of a topic's words, mean per
  topic, then over topics; in [-1, 1]. gensim steps through every window in Python (about
  20 s per 10,000 abstracts), so :func:`npmi` computes the same counts and formula with
  numpy by default; ``implementation="gensim"`` calls gensim itself, and a test checks that
  both give the same number on random corpora (gensim's quirks included, see
  :func:`_window_presence`).
- **Diversity**: OCTIS ``TopicDiversity``, the share of unique words among all topics' top 10.

**Top words.** Topics are scored on unigrams, as in OCTIS and the BERTopic paper. A key
phrase counts as its words: the keywords ``["graph neural", "message passing", "graph"]``
give the words ``graph, neural, message, passing`` (:func:`top_words`): each keyword is
split with the tokenisation used for the texts, repeated words are kept once, and the
first 10 unique words are the topic's top 10.

**Tokenisation.** Texts and keywords go through the same steps (:func:`tokenize`):
lowercase, then the label stage's token pattern (words of two or more characters that start
with a letter; digits and underscores are no words), then English stop words (scikit-learn's
list) are dropped, as OCTIS' preprocessed reference corpora have none. Keywords never hold
stop words (the label stage removes them before c-TF-IDF), so nothing is lost there.

**Differences from OCTIS and the BERTopic evaluation code**, all for topics OCTIS would
reject or score oddly:

- A top word that never occurs in the texts is dropped (logged), as gensim does itself; the
  BERTopic evaluation replaced it with the corpus's first word instead.
- A topic with fewer than two scorable words has no word pair: it is left out of the NPMI
  mean (gensim would return NaN for it). NPMI is ``None`` when no topic is left.
- A topic with fewer than 10 words counts with the words it has (OCTIS raises): diversity
  is unique words / all top words.
- The outlier topic (-1) is never scored, as in the BERTopic evaluation.
- One topic is enough for NPMI (it is a per-topic mean); its diversity is then 1.0 unless
  it repeats words.

A known quirk of gensim's ``c_npmi`` is kept: two words that occur together in *every*
sliding window of the corpus score -1 instead of 1 (0/0 guarded by an epsilon). Real
corpora never do this; tiny toy corpora can.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from pipeline.schema import OUTLIER_TOPIC

log = logging.getLogger(__name__)

TOP_K = 10
# The label stage's TOKEN_PATTERN (pipeline/label.py; a test keeps the two equal). Not
# imported from there: the label stage imports this module.
WORD_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"
# For texts that are already tokens joined by spaces (the output of octis_preprocess).
PRESPLIT_PATTERN = r"\S+"
METRIC_KEYS = ("n_topics", "outlier_share", "largest_topic_share", "npmi", "diversity", "nmi", "ami", "ari")
_DECIMALS = 6  # metrics.json is byte-identical across machines


@functools.cache
def _english_stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def tokenize(text: str, token_pattern: str = WORD_PATTERN, stop_words: Collection[str] | None = None) -> list[str]:
    """Lowercased words of ``text`` in order, without stop words (default: scikit-learn's English list)."""
    stop = _english_stop_words() if stop_words is None else stop_words
    return [word for word in re.findall(token_pattern, text.lower()) if word not in stop]


def top_words(
    keywords: Sequence[str],
    topk: int = TOP_K,
    token_pattern: str = WORD_PATTERN,
    stop_words: Collection[str] | None = None,
) -> list[str]:
    """A topic's first ``topk`` unique words, key phrases split into their words.

    ``["graph neural", "neural networks", "gnn"]`` -> ``["graph", "neural", "networks", "gnn"]``.
    """
    stop = _english_stop_words() if stop_words is None else stop_words
    words: list[str] = []
    for keyword in keywords:
        for word in tokenize(keyword, token_pattern, stop):
            if word not in words:
                words.append(word)
                if len(words) == topk:
                    return words
    return words


def npmi(
    topics_words: Sequence[Sequence[str]],
    texts: Sequence[str],
    topk: int = TOP_K,
    token_pattern: str = WORD_PATTERN,
    stop_words: Collection[str] | None = None,
    implementation: Literal["numpy", "gensim"] = "numpy",
) -> float | None:
    """Mean NPMI coherence of the topics' top words over ``texts``, as OCTIS computes it.

    ``topics_words`` holds each topic's words, best first (use :func:`top_words` to split key
    phrases); only the first ``topk`` count. Words absent from the tokenised texts are
    dropped and topics left with fewer than two words are skipped (both logged). ``None``
    when no topic can be scored. For texts that are already preprocessed (OCTIS corpora,
    space-separated tokens) pass ``token_pattern=PRESPLIT_PATTERN`` and ``stop_words=()``.
    """
    stop = _english_stop_words() if stop_words is None else stop_words
    tokenised = [tokenize(text, token_pattern, stop) for text in texts]
    vocabulary = {word for tokens in tokenised for word in tokens}
    scored: list[list[str]] = []
    absent = 0
    for words in topics_words:
        head = list(dict.fromkeys(word.lower() for word in words))[:topk]
        known = [word for word in head if word in vocabulary]
        absent += len(head) - len(known)
        if len(known) >= 2:
            scored.append(known)
    skipped = len(topics_words) - len(scored)
    if absent or skipped:
        log.info(
            "NPMI: %d top word(s) absent from the texts were dropped; %d topic(s) with fewer than 2 words skipped",
            absent,
            skipped,
        )
    if not scored:
        return None
    if implementation == "gensim":
        from gensim.corpora import Dictionary
        from gensim.models.coherencemodel import CoherenceModel

        model = CoherenceModel(
            topics=scored,
            texts=tokenised,
            dictionary=Dictionary(tokenised),
            coherence="c_npmi",
            topn=topk,
            processes=1,
        )
        value = float(model.get_coherence())
    else:
        value = _sliding_window_npmi(scored, tokenised)
    return value if np.isfinite(value) else None


# gensim.topic_coherence: c_npmi's window and the epsilon of its direct confirmation measure.
NPMI_WINDOW = 10
_EPSILON = 1e-12


def _sliding_window_npmi(topics: list[list[str]], texts: list[list[str]], window: int = NPMI_WINDOW) -> float:
    """The c_npmi of gensim, vectorised: the same counts and formula, without a Python step per window.

    Every text gives ``len - window + 1`` windows of ``window`` tokens, or one window when it is
    shorter (an empty text too). p(w) is the share of windows holding w, p(w1, w2) the share
    holding both; NPMI = log((p12 + eps) / (p1 p2)) / -log(p12 + eps), averaged over each
    topic's word pairs, then over topics. gensim visits every window in Python (minutes on
    tens of thousands of abstracts); a test checks both give the same number.
    """
    words = sorted({word for topic in topics for word in topic})
    index = {word: i for i, word in enumerate(words)}
    pairs = np.array(
        sorted(
            {
                (min(a, b), max(a, b))
                for topic in topics
                for a in map(index.get, topic)
                for b in map(index.get, topic)
                if a != b
            }
        ),
        dtype=np.int64,
    ).reshape(-1, 2)
    occurrences = np.zeros(len(words), dtype=np.int64)
    co_occurrences = np.zeros(len(pairs), dtype=np.int64)
    local_of = np.full(len(words), -1, dtype=np.int64)
    n_windows = 0
    for text in texts:
        ids = np.fromiter((index.get(token, -1) for token in text), dtype=np.int64, count=len(text))
        n_text_windows = max(len(text) - window + 1, 1)
        n_windows += n_text_windows
        positions = np.flatnonzero(ids >= 0)
        if positions.size == 0:
            continue
        present, column = np.unique(ids[positions], return_inverse=True)
        holds = _window_presence(positions, column, len(present), n_text_windows, window)
        occurrences[present] += holds.sum(axis=0)
        together = holds.T @ holds
        local_of[present] = np.arange(len(present))
        left, right = local_of[pairs[:, 0]], local_of[pairs[:, 1]]
        both = (left >= 0) & (right >= 0)
        co_occurrences[both] += together[left[both], right[both]]
        local_of[present] = -1

    pair_npmi: dict[tuple[int, int], float] = {}
    for (a, b), co in zip(pairs.tolist(), co_occurrences.tolist(), strict=True):
        joint = co / n_windows
        ratio = np.log((joint + _EPSILON) / ((occurrences[a] / n_windows) * (occurrences[b] / n_windows)))
        pair_npmi[a, b] = float(ratio / -np.log(joint + _EPSILON))
    per_topic = []
    for topic in topics:
        members = [index[word] for word in topic]
        per_topic.append(np.mean([pair_npmi[min(a, b), max(a, b)] for a in members for b in members if a != b]))
    return float(np.mean(per_topic))


def diversity(topics_words: Sequence[Sequence[str]], topk: int = TOP_K) -> float | None:
    """Share of unique words among all topics' top ``topk`` words (OCTIS TopicDiversity).

    1.0 when no word is shared; two topics of 10 words sharing 5 give 15 / 20 = 0.75.
    ``None`` when there is no word at all.
    """
    heads = [list(words)[:topk] for words in topics_words]
    total = sum(len(head) for head in heads)
    if total == 0:
        return None
    return len({word for head in heads for word in head}) / total


def n_topics(topics_per_paper: Iterable[int]) -> int:
    """Number of topics, the outlier topic (-1) not counted."""
    return len({int(topic) for topic in topics_per_paper} - {OUTLIER_TOPIC})


def outlier_share(topics_per_paper: Sequence[int]) -> float | None:
    """Share of papers in the outlier topic (-1); ``None`` when there is no paper."""
    topics = np.asarray(topics_per_paper)
    return float(np.mean(topics == OUTLIER_TOPIC)) if topics.size else None


def largest_topic_share(topics_per_paper: Sequence[int]) -> float | None:
    """Share of all papers (outliers included) in the largest topic; ``None`` without topics."""
    topics = np.asarray(topics_per_paper)
    inliers = topics[topics != OUTLIER_TOPIC]
    if inliers.size == 0:
        return None
    return float(np.unique(inliers, return_counts=True)[1].max() / topics.size)


def label_agreement(topics_per_paper: Sequence[int], labels: Sequence[str | None]) -> dict[str, float | None]:
    """NMI, AMI and ARI between topics and known labels (scikit-learn).

    Outliers count as one more cluster, -1, as if it were a topic: a model gains nothing by
    sending hard papers to the outliers. Papers without a label (``""`` or ``None``) are left
    out; all three are ``None`` when fewer than two papers carry one. NMI uses the arithmetic
    mean of the entropies (scikit-learn's default, as in BERTopic's and most papers' tables).
    """
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

    if len(topics_per_paper) != len(labels):
        raise ValueError(f"{len(topics_per_paper)} topics but {len(labels)} labels: one of each per paper")
    pairs = [(int(topic), label) for topic, label in zip(topics_per_paper, labels, strict=True) if _known(label)]
    if len(pairs) < 2:
        return {"nmi": None, "ami": None, "ari": None}
    topics = [topic for topic, _ in pairs]
    known = [str(label) for _, label in pairs]
    return {
        "nmi": float(normalized_mutual_info_score(known, topics)),
        "ami": float(adjusted_mutual_info_score(known, topics)),
        "ari": float(adjusted_rand_score(known, topics)),
    }


def _known(label: object) -> bool:
    """A label is known unless it is None, NaN/NA or the empty string."""
    import pandas as pd

    return label is not None and not (pd.api.types.is_scalar(label) and pd.isna(label)) and str(label) != ""


def compute_metrics(
    texts: Sequence[str],
    topics_per_paper: Sequence[int],
    topic_words: Mapping[int, Sequence[str]],
    labels: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The flat metrics dict of ``pipeline.schema``: one text, topic and (optional) label per paper.

    ``topic_words`` maps a topic id to its keywords, best first (key phrases allowed; the
    outlier topic -1 is ignored). Every key of ``METRIC_KEYS`` is present; a value that
    cannot be computed is ``None`` (no paper, no topic, no labels). Floats are rounded to
    6 decimals.
    """
    if len(texts) != len(topics_per_paper):
        raise ValueError(f"{len(texts)} texts but {len(topics_per_paper)} topics: one of each per paper")
    words = [top_words(keywords) for topic, keywords in sorted(topic_words.items()) if topic != OUTLIER_TOPIC]
    agreement: dict[str, float | None] = {"nmi": None, "ami": None, "ari": None}
    if labels is not None and any(_known(label) for label in labels):
        agreement = label_agreement(topics_per_paper, labels)
    values: dict[str, Any] = {
        "n_topics": n_topics(topics_per_paper),
        "outlier_share": outlier_share(topics_per_paper),
        "largest_topic_share": largest_topic_share(topics_per_paper),
        "npmi": npmi(words, texts),
        "diversity": diversity(words),
        **agreement,
    }
    return {key: round(value, _DECIMALS) if isinstance(value, float) else value for key, value in values.items()}


class OctisCorpus(NamedTuple):
    """Preprocessed documents (space-separated tokens) and, for each, its index in the input."""

    texts: list[str]
    indices: list[int]


# Every character that is neither a letter nor a space: OCTIS turns ASCII punctuation
# (string.punctuation, "_" included) and digits into spaces; Unicode punctuation (’ “ ” —),
# which OCTIS leaves glued to words, goes too.
_NOT_A_LETTER = re.compile(r"[^\w\s]|[\d_]")


def octis_preprocess(
    texts: Sequence[str],
    min_words: int = 5,
    lemmatize: bool = True,
    stop_words: Collection[str] | None = None,
    min_chars: int = 3,
    min_df: float | int = 0.0,
    max_df: float | int = 1.0,
    max_features: int | None = None,
) -> OctisCorpus:
    """OCTIS-style preprocessing for the BERTopic paper's protocol; returns kept texts and their indices.

    Per document: lowercase; punctuation and digits become spaces; English stop words
    (scikit-learn's list unless ``stop_words`` is given) are dropped, before and after
    lemmatisation; words become their lemma (simplemma's English dictionary, offline);
    words shorter than ``min_chars`` are dropped. Then an optional vocabulary filter by
    document frequency (``min_df``, ``max_df``, ``max_features``: scikit-learn
    ``CountVectorizer`` semantics, as OCTIS' own filter), and documents with fewer than
    ``min_words`` words left are dropped.

    Where it differs from OCTIS: OCTIS lemmatises with spaCy's ``en_core_web_sm`` (a POS
    tagger, so "learning" stays a noun in "machine learning") and uses spaCy's stop words;
    that model is not on PyPI, so papertopics uses simplemma's context-free lemma dictionary
    ("learning" -> "learn" everywhere) and scikit-learn's 318 stop words. ``min_chars=3``:
    OCTIS' default is 1, but its published 20NewsGroup corpus has no word shorter than three
    letters. OCTIS' published corpora were also vocabulary-filtered (20NewsGroup: 1,612
    words) with settings it does not publish; the filter is off by default here.
    """
    stop = _english_stop_words() if stop_words is None else frozenset(stop_words)
    lemma = _lemmatizer() if lemmatize else (lambda word: word)
    documents: list[list[str]] = []
    for text in texts:
        words = _NOT_A_LETTER.sub(" ", text.lower()).split()
        words = [lemma(word) for word in words if word not in stop]
        documents.append([word for word in words if word not in stop and len(word) >= min_chars])

    if min_df != 0.0 or max_df != 1.0 or max_features is not None:
        vocabulary = _filter_vocabulary(documents, min_df, max_df, max_features)
        documents = [[word for word in words if word in vocabulary] for words in documents]

    kept = [index for index, words in enumerate(documents) if len(words) >= min_words]
    return OctisCorpus(texts=[" ".join(documents[index]) for index in kept], indices=kept)


def _lemmatizer():
    try:
        import simplemma
    except ImportError as exc:  # a dependency of papertopics: missing means a broken install
        raise RuntimeError("octis_preprocess(lemmatize=True) needs the simplemma package") from exc
    cache: dict[str, str] = {}

    def lemma(word: str) -> str:
        if word not in cache:
            cache[word] = simplemma.lemmatize(word, lang="en").lower()
        return cache[word]

    return lemma


def _filter_vocabulary(
    documents: list[list[str]], min_df: float | int, max_df: float | int, max_features: int | None
) -> set[str]:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(analyzer=lambda words: words, min_df=min_df, max_df=max_df, max_features=max_features)
    try:
        vectorizer.fit(documents)
    except ValueError:  # every word pruned, or no word at all
        return set()
    return set(vectorizer.get_feature_names_out())


def _window_presence(
    positions: np.ndarray, column: np.ndarray, n_words: int, n_windows: int, window: int
) -> np.ndarray:
    """Which of a text's topic words each window holds, as gensim's accumulator counts it.

    positions: token positions of topic words; column: each one's word (0..n_words-1).
    Returns an int64 array of shape (n_windows, n_words) of 0/1.

    gensim slides the window by one token: it unmarks the token that leaves, then marks the
    token that enters. A word that occurs twice within one window is unmarked when its first
    copy leaves although the second is still inside, until a new copy enters. So a word
    counts in window s when its last entry (window 0 for the tokens of the first window,
    else p - window + 1) is no earlier than its last exit (q + 1 for a copy at q < s). This
    undercounts repeated words a little; it is kept so that the numbers are gensim's and
    OCTIS', which the BERTopic paper reports.
    """
    entered = np.full((n_windows, n_words), -1, dtype=np.int32)
    entry = np.maximum(positions - window + 1, 0)
    entered[entry, column] = entry
    left = np.full((n_windows, n_words), -1, dtype=np.int32)
    exits = positions + 1
    inside = exits < n_windows
    left[exits[inside], column[inside]] = exits[inside]
    last_entry = np.maximum.accumulate(entered, axis=0)
    last_exit = np.maximum.accumulate(left, axis=0)
    return ((last_entry >= 0) & (last_entry >= last_exit)).astype(np.int64)
