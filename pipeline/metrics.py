"""Topic-quality metrics: coherence, diversity, outliers and agreement with known labels.

Pure functions, no I/O. Coherence and diversity follow OCTIS, the toolkit the BERTopic
paper (Grootendorst, 2022) evaluated with:

- **NPMI**: gensim's ``CoherenceModel(coherence="c_npmi", topn=10)`` over the tokenised
  texts, with ``Dictionary(tokenised_texts)`` and ``processes=1``, as OCTIS' ``Coherence``
  calls it: sliding windows of 10 tokens, NPMI of every pair of a topic's words, mean per
  topic, then over topics; in [-1, 1]. gensim steps through every window in Python (about
  20 s per 10,000 abstracts), so :func:`npmi` computes the same counts and formula in a
  numba-compiled loop by default; ``implementation="gensim"`` calls gensim itself, and a
  test checks that both give the same number on random corpora (gensim's quirks included,
  see :func:`_window_counts`).
- **Diversity**: OCTIS ``TopicDiversity``, the share of unique words among all topics' top 10.

**Top words.** Topics are scored on unigrams, as in OCTIS and the BERTopic paper. A key
phrase counts as its words: the keywords ``["graph neural", "message passing", "graph"]``
give the words ``graph, neural, message, passing`` (:func:`top_words`): each keyword is
split with the tokenisation used for the texts, repeated words are kept once, and the
first 10 unique words are the topic's top 10.

**Tokenisation.** Texts and keywords go through the same steps (:func:`tokenize`):
lowercase, then the label stage's token pattern (words of two or more characters that start
with a letter; digits, underscores and LaTeX commands other than Greek letters are no words),
then English stop words (scikit-learn's list) are dropped, as OCTIS' preprocessed reference
corpora have none. Keywords never hold stop words (the label stage removes them before
c-TF-IDF), so nothing is lost there.

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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipeline.agreement import known_mask, label_agreement
from pipeline.schema import OUTLIER_TOPIC

if TYPE_CHECKING:
    from pipeline.terms import TokenizedTexts

log = logging.getLogger(__name__)

TOP_K = 10
# The label stage's TOKEN_PATTERN (pipeline/terms.py; a test keeps the two equal): words, not
# LaTeX commands, but Greek letters. Not imported from there: terms loads pandas and scipy.
WORD_PATTERN = (
    r"(?u)(?<!\\)\b[^\W\d_][^\W_]+\b|(?<=\\)(?:alpha|beta|chi|delta|epsilon|eta|gamma|iota|kappa|lambda|mu|nu|"
    r"omega|omicron|phi|pi|psi|rho|sigma|tau|theta|upsilon|varepsilon|varphi|varpi|varrho|varsigma|vartheta|xi|zeta)\b"
)
# For texts that are already tokens joined by spaces (the output of bench/octis.py: octis_preprocess).
PRESPLIT_PATTERN = r"\S+"
# What each figure of metrics.json is called and measures, for the CLI's evaluate table and the dashboard.
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "n_topics": ("topics", "number of topics, outliers not counted"),
    "outlier_share": ("outlier share", "share of the papers left in the -1 outlier topic"),
    "largest_topic_share": ("largest topic", "share of all papers in the largest topic"),
    "npmi": (
        "coherence (NPMI)",
        "−1 to 1: how often a topic's top 10 keywords occur together in the run's texts; above 0.1 is good",
    ),
    "diversity": ("keyword diversity", "0 to 1: share of distinct words among the topics' top 10 keywords"),
    "nmi": ("NMI vs. labels", "0 to 1: how well the topics agree with the known labels"),
    "ami": ("AMI vs. labels", "like NMI, corrected for chance: 0 = chance, 1 = the same grouping"),
    "ari": ("ARI vs. labels", "pairs of papers grouped alike: 0 = chance, 1 = the same grouping"),
    "name_coverage_mean": ("name coverage", "mean share of a topic's papers that write its name's main phrase"),
    "name_coverage_min": ("least name coverage", "the topic whose name's main phrase the fewest of its papers write"),
    "name_low_coverage_share": ("names under 20%", "share of topics whose name fewer than 20% of their papers write"),
    "name_lift_median": ("name lift", "median of how many times more often a topic writes its name than the rest"),
    "name_nearest_share": ("names nearest their topic", "share of topics whose name is nearest their own centroid"),
    "name_faults": (
        "faulty names",
        "names with a part no paper writes, a fragment, a lowercased acronym, only generic words, a word generic in"
        " the pile, another topic's head phrase, or nearer another topic",
    ),
}
# The figures compute_metrics returns; the name_* ones come from pipeline.label.audit.
METRIC_KEYS = ("n_topics", "outlier_share", "largest_topic_share", "npmi", "diversity", "nmi", "ami", "ari")
_DECIMALS = 6  # metrics.json is byte-identical across machines


def english_stop_words() -> frozenset[str]:
    from pipeline.terms import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def tokenize(text: str, token_pattern: str = WORD_PATTERN, stop_words: Collection[str] | None = None) -> list[str]:
    """Lowercased words of ``text`` in order, without stop words (default: scikit-learn's English list)."""
    stop = english_stop_words() if stop_words is None else stop_words
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
    stop = english_stop_words() if stop_words is None else stop_words
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
    implementation: Literal["numba", "gensim"] = "numba",
    tokens: TokenizedTexts | None = None,
) -> float | None:
    """Mean NPMI coherence of the topics' top words over ``texts``, as OCTIS computes it.

    ``topics_words`` holds each topic's words, best first (use :func:`top_words` to split key
    phrases); only the first ``topk`` count. Words absent from the tokenised texts are
    dropped and topics left with fewer than two words are skipped (both logged). ``None``
    when no topic can be scored. For texts that are already preprocessed (OCTIS corpora,
    space-separated tokens) pass ``token_pattern=PRESPLIT_PATTERN`` and ``stop_words=()``.
    ``tokens``: ``texts`` already tokenised with ``token_pattern``, stop words kept (the
    label stage's cached tokens), to skip tokenising them again.
    """
    from pipeline.terms import tokenize_texts, without

    stop = english_stop_words() if stop_words is None else stop_words
    if tokens is None:
        tokens = tokenize_texts(texts, token_pattern)
    elif len(tokens) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(tokens)} tokenised texts")
    tokenised = without(tokens, stop)
    vocabulary = tokenised.used_words()
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

        texts_as_words = [tokenised.words(index) for index in range(len(tokenised))]
        model = CoherenceModel(
            topics=scored,
            texts=texts_as_words,
            dictionary=Dictionary(texts_as_words),
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


def _sliding_window_npmi(topics: list[list[str]], texts: TokenizedTexts, window: int = NPMI_WINDOW) -> float:
    """The c_npmi of gensim, compiled: the same counts and formula, without a Python step per window.

    Every text gives ``len - window + 1`` windows of ``window`` tokens, or one window when it is
    shorter (an empty text too). p(w) is the share of windows holding w, p(w1, w2) the share
    holding both; NPMI = log((p12 + eps) / (p1 p2)) / -log(p12 + eps), averaged over each
    topic's word pairs, then over topics. gensim visits every window in Python (minutes on
    tens of thousands of abstracts); a test checks both give the same number.
    """
    words = sorted({word for topic in topics for word in topic})
    index = {word: i for i, word in enumerate(words)}
    local = np.full(len(texts.vocabulary), -1, dtype=np.int64)
    local[texts.ids_of(words)] = np.arange(len(words))
    occurrences, together, n_windows = _window_counts(
        texts.tokens.astype(np.int64), texts.offsets.astype(np.int64), local, len(words), window
    )
    per_topic = []
    for topic in topics:
        members = [index[word] for word in topic]
        pair_npmi = []
        for a in members:
            for b in members:
                if a == b:
                    continue
                joint = together[a, b] / n_windows
                ratio = np.log((joint + _EPSILON) / ((occurrences[a] / n_windows) * (occurrences[b] / n_windows)))
                pair_npmi.append(float(ratio / -np.log(joint + _EPSILON)))
        per_topic.append(np.mean(pair_npmi))
    return float(np.mean(per_topic))


def _window_counts(
    tokens: np.ndarray, offsets: np.ndarray, local: np.ndarray, n_words: int, window: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Windows holding each topic word and each pair of them, and the number of windows.

    tokens, offsets: the texts (see ``pipeline.terms.TokenizedTexts``); local: each vocabulary
    id's topic-word index, -1 for other words. Compiled with numba on first use (cached on
    disk in NUMBA_CACHE_DIR): a Python loop over 10 million windows takes minutes.

    gensim slides the window by one token: it unmarks the token that leaves, then marks the
    token that enters. A word that occurs twice within one window is therefore unmarked when
    its first copy leaves although the second is still inside, until a new copy enters. This
    undercounts repeated words a little; it is kept so that the numbers are gensim's and
    OCTIS', which the BERTopic paper reports.
    """
    return _compiled_window_counts()(tokens, offsets, local, n_words, window)


@functools.cache
def _compiled_window_counts():
    import numba

    # A module-level function, so that numba can cache its machine code on disk.
    compiled = numba.njit(cache=True)(_count_windows)
    # Load (or compile) it for the argument types of _window_counts now, once per process.
    empty = np.zeros(0, dtype=np.int64)
    compiled(empty, np.zeros(1, dtype=np.int64), empty, 0, NPMI_WINDOW)
    return compiled


def prepare_npmi() -> None:
    """Load NPMI's compiled code now: about a second of numba that a caller can overlap with other work."""
    _compiled_window_counts()


def _count_windows(tokens, offsets, local, n_words, window):  # compiled by numba, see _window_counts
    occurrences = np.zeros(n_words, dtype=np.int64)
    together = np.zeros((n_words, n_words), dtype=np.int64)
    marked = np.zeros(n_words, dtype=np.bool_)
    seen = np.zeros(n_words, dtype=np.bool_)
    present = np.empty(window, dtype=np.int64)
    n_windows = 0
    for text in range(len(offsets) - 1):
        start, end = offsets[text], offsets[text + 1]
        last_start = max(end - window, start)  # a short text is one window
        n_windows += last_start - start + 1
        for position in range(start, min(start + window, end)):
            word = local[tokens[position]]
            if word >= 0:
                marked[word] = True
        for first in range(start, last_start + 1):
            if first > start:
                leaving = local[tokens[first - 1]]
                if leaving >= 0:
                    marked[leaving] = False
                entering = local[tokens[first + window - 1]]
                if entering >= 0:
                    marked[entering] = True
            n_present = 0
            for position in range(first, min(first + window, end)):
                word = local[tokens[position]]
                if word >= 0 and marked[word] and not seen[word]:
                    seen[word] = True
                    present[n_present] = word
                    n_present += 1
            for i in range(n_present):
                a = present[i]
                seen[a] = False
                occurrences[a] += 1
                for j in range(i + 1, n_present):
                    b = present[j]
                    together[a, b] += 1
                    together[b, a] += 1
        for position in range(last_start, end):
            word = local[tokens[position]]
            if word >= 0:
                marked[word] = False
    return occurrences, together, n_windows


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


def compute_metrics(
    texts: Sequence[str],
    topics_per_paper: Sequence[int],
    topic_words: Mapping[int, Sequence[str]],
    labels: Sequence[str | None] | None = None,
    tokens: TokenizedTexts | None = None,
    npmi_of: Callable[[list[list[str]]], float | None] | None = None,
) -> dict[str, Any]:
    """The flat metrics dict of ``pipeline.schema``: one text, topic and (optional) label per paper.

    ``topic_words`` maps a topic id to its keywords, best first (key phrases allowed; the
    outlier topic -1 is ignored). Every key of ``METRIC_KEYS`` is present; a value that
    cannot be computed is ``None`` (no paper, no topic, no labels). Floats are rounded to
    6 decimals. ``tokens``: the texts already tokenised (see :func:`npmi`). ``npmi_of(words)``: the
    :func:`npmi` of the topics' top words over ``texts``, when the caller keeps it between runs.
    """
    if len(texts) != len(topics_per_paper):
        raise ValueError(f"{len(texts)} texts but {len(topics_per_paper)} topics: one of each per paper")
    words = [top_words(keywords) for topic, keywords in sorted(topic_words.items()) if topic != OUTLIER_TOPIC]
    agreement: dict[str, float | None] = {"nmi": None, "ami": None, "ari": None}
    if labels is not None and known_mask(labels).any():
        agreement = label_agreement(topics_per_paper, labels)
    values: dict[str, Any] = {
        "n_topics": n_topics(topics_per_paper),
        "outlier_share": outlier_share(topics_per_paper),
        "largest_topic_share": largest_topic_share(topics_per_paper),
        "npmi": npmi(words, texts, tokens=tokens) if npmi_of is None else npmi_of(words),
        "diversity": diversity(words),
        **agreement,
    }
    return {key: round(value, _DECIMALS) if isinstance(value, float) else value for key, value in values.items()}
