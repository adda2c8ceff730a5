"""The preprocessing of OCTIS' published corpora, for the BERTopic paper's evaluation protocol.

``bench/bertopic_paper.py`` scores both systems on texts preprocessed as OCTIS preprocessed
20 Newsgroups and BBC News (lowercase, punctuation and digits out, lemmas, stop words out, the
vocabulary cut to the sizes OCTIS reports). Not used by a run: it lives with the benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import NamedTuple

from pipeline.metrics import english_stop_words


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
    stop = english_stop_words() if stop_words is None else frozenset(stop_words)
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
