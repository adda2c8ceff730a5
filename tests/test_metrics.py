"""Topic-quality metrics on tiny inputs whose answers are known by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.octis import octis_preprocess
from pipeline import metrics
from pipeline.agreement import label_agreement
from pipeline.metrics import (
    METRIC_KEYS,
    PRESPLIT_PATTERN,
    compute_metrics,
    diversity,
    largest_topic_share,
    n_topics,
    npmi,
    outlier_share,
    top_words,
)

GRAPHS = ["graph", "neural", "node", "edge", "message", "passing"]
PROTEINS = ["protein", "folding", "amino", "residue", "enzyme", "binding"]
FILLER = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"]


def toy_corpus() -> list[str]:
    """20 documents about graphs and 20 about proteins, each padded with unrelated words."""
    rng = random.Random(7)
    texts = []
    for words in (GRAPHS, PROTEINS):
        for _ in range(20):
            texts.append(" ".join(rng.sample(words, 4) + rng.sample(FILLER, 3)))
    return texts


# --- agreement with labels ----------------------------------------------------------------


def test_nmi_ami_ari_are_one_when_topics_match_labels_exactly():
    labels = ["cs.LG"] * 3 + ["q-bio"] * 3
    for topics in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0]):  # topic ids are arbitrary
        assert label_agreement(topics, labels) == pytest.approx({"nmi": 1.0, "ami": 1.0, "ari": 1.0})


def test_agreement_falls_when_assignment_is_shuffled():
    labels = ["cs.LG"] * 4 + ["q-bio"] * 4
    perfect = label_agreement([0, 0, 0, 0, 1, 1, 1, 1], labels)
    shuffled = label_agreement([0, 1, 0, 1, 1, 0, 1, 0], labels)  # each topic half one label, half the other
    for key in ("nmi", "ami", "ari"):
        assert shuffled[key] < perfect[key]
    assert shuffled["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert shuffled["ari"] < 0.0


def test_outliers_are_a_cluster_of_their_own_and_unlabelled_papers_are_left_out():
    # the outliers hold exactly the "hep-th" papers: agreement stays perfect
    assert label_agreement([-1, -1, 0, 0, 1, 1], ["hep-th", "hep-th", "a", "a", "b", "b"])["nmi"] == pytest.approx(1.0)
    # papers without a label (None or "") do not count, whatever their topic
    result = label_agreement([0, 0, 1, 1, 1, 0], ["a", "a", "b", "b", "", None])
    assert result == pytest.approx({"nmi": 1.0, "ami": 1.0, "ari": 1.0})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-1, 6), st.sampled_from(["a", "b", "c", "d", "", None])), min_size=2, max_size=60)
)
def test_agreement_equals_scikit_learn(pairs):
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

    topics, labels = [topic for topic, _ in pairs], [label for _, label in pairs]
    result = label_agreement(topics, labels)
    kept = [(topic, label) for topic, label in pairs if label]
    if len(kept) < 2:
        assert result == {"nmi": None, "ami": None, "ari": None}
        return
    truth, found = [label for _, label in kept], [topic for topic, _ in kept]
    assert result["nmi"] == pytest.approx(normalized_mutual_info_score(truth, found), abs=1e-9)
    assert result["ami"] == pytest.approx(adjusted_mutual_info_score(truth, found), abs=1e-9)
    assert result["ari"] == pytest.approx(adjusted_rand_score(truth, found), abs=1e-9)


def test_agreement_equals_scikit_learn_at_scale():
    # Many papers and unequal class sizes: the expected mutual information sums millions of terms.
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

    rng = np.random.default_rng(3)
    labels = rng.choice([f"cat{i}" for i in range(30)], size=20_000, p=np.arange(1, 31) / np.arange(1, 31).sum())
    topics = np.where(rng.random(20_000) < 0.6, np.char.str_len(labels.astype(str)) % 7, rng.integers(-1, 50, 20_000))
    result = label_agreement(topics.tolist(), labels.tolist())
    assert result["nmi"] == pytest.approx(normalized_mutual_info_score(labels, topics), abs=1e-9)
    assert result["ami"] == pytest.approx(adjusted_mutual_info_score(labels, topics), abs=1e-9)
    assert result["ari"] == pytest.approx(adjusted_rand_score(labels, topics), abs=1e-9)


def test_stop_words_are_scikit_learns():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from pipeline.terms import ENGLISH_STOP_WORDS as OURS

    assert OURS == ENGLISH_STOP_WORDS


def test_agreement_is_none_with_fewer_than_two_labelled_papers():
    assert label_agreement([0, 1, 1], ["a", "", None]) == {"nmi": None, "ami": None, "ari": None}
    with pytest.raises(ValueError, match="one of each per paper"):
        label_agreement([0, 1], ["a"])


# --- diversity ----------------------------------------------------------------------------


def test_diversity_counts_unique_words_among_all_top_words():
    first = [f"w{i}" for i in range(10)]
    second = first[:5] + [f"v{i}" for i in range(5)]  # 5 of 10 shared
    assert diversity([first, second]) == 0.75
    assert diversity([first, first]) == 0.5
    assert diversity([first, [f"v{i}" for i in range(10)]]) == 1.0
    assert diversity([[*first, "extra"], first]) == 0.5  # only the top 10 count
    assert diversity([["a", "b"], ["b", "c"]]) == 0.75  # short topics count with the words they have
    assert diversity([]) is None
    assert diversity([[], []]) is None


# --- top words ----------------------------------------------------------------------------


def test_top_words_split_key_phrases_into_their_unique_words():
    keywords = ["graph neural", "neural networks", "Message-Passing", "graph", "the 3d mesh"]
    # lowercased, repeated words kept once, stop words and digits are no words
    assert top_words(keywords) == ["graph", "neural", "networks", "message", "passing", "mesh"]


def test_top_words_keep_ten_words_from_eight_bigrams():
    keywords = ["graph neural", "neural network", "message passing", "node classification", "link prediction"]
    keywords += ["graph transformer", "spectral clustering", "random walk"]
    words = top_words(keywords)
    assert words == [
        "graph",
        "neural",
        "network",
        "message",
        "passing",
        "node",
        "classification",
        "link",
        "prediction",
        "transformer",
    ]


def test_word_pattern_is_the_label_stage_token_pattern():
    from pipeline.terms import TOKEN_PATTERN

    assert metrics.WORD_PATTERN == TOKEN_PATTERN


# --- NPMI ---------------------------------------------------------------------------------


def test_npmi_is_higher_for_coherent_topics_than_for_scrambled_ones():
    texts = toy_corpus()
    coherent = npmi([GRAPHS, PROTEINS], texts)
    scrambled = npmi([GRAPHS[:3] + PROTEINS[:3], PROTEINS[3:] + GRAPHS[3:]], texts)
    assert coherent is not None and scrambled is not None
    assert -1.0 <= scrambled < 0.0 < coherent <= 1.0
    assert coherent - scrambled > 0.5


def test_npmi_drops_absent_words_and_skips_topics_without_a_pair():
    texts = toy_corpus()
    base = npmi([GRAPHS], texts)
    assert npmi([[*GRAPHS, "unseen", "Words"]], texts) == base  # absent words are dropped, not an error
    assert npmi([GRAPHS, ["graph", "unseen"]], texts) == base  # one known word: no pair, topic skipped
    assert npmi([["graph", "unseen"], ["nothing", "here"]], texts) is None
    assert npmi([], texts) is None
    assert npmi([GRAPHS], []) is None


def test_npmi_counts_only_the_top_ten_words():
    texts = toy_corpus()
    ten = [*GRAPHS, "alpha", "beta", "gamma", "delta"]
    assert npmi([[*ten, "protein", "folding"]], texts) == npmi([ten], texts)


@pytest.mark.parametrize("seed", range(4))
def test_numpy_npmi_equals_gensim_coherence_model(seed):
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}x" for i in range(40)]
    weights = 1 / np.arange(1, 41) ** 1.1  # zipfian: words repeat inside windows, short and empty texts too
    weights /= weights.sum()
    texts = [" ".join(rng.choice(vocabulary, rng.integers(0, 45), p=weights)) for _ in range(40)]
    topics = [list(rng.choice(vocabulary, 10, replace=False)) for _ in range(5)]
    fast = npmi(topics, texts)
    reference = npmi(topics, texts, implementation="gensim")
    assert fast is not None and reference is not None
    assert fast == pytest.approx(reference, abs=1e-12)


def test_numpy_npmi_equals_gensim_on_preprocessed_texts_with_repeated_words():
    texts = ["aa bb aa cc dd ee ff gg hh ii aa jj bb", "bb cc", "", "aa aa aa aa aa aa aa aa aa aa aa bb"]
    topics = [["aa", "bb", "cc"], ["dd", "jj", "aa"]]
    kwargs = {"token_pattern": PRESPLIT_PATTERN, "stop_words": ()}
    assert npmi(topics, texts, **kwargs) == pytest.approx(npmi(topics, texts, implementation="gensim", **kwargs))


# --- counts -------------------------------------------------------------------------------


def test_outlier_and_largest_topic_shares_are_exact():
    topics = [-1, -1, 0, 0, 0, 1, 1, 2, 2, 2]
    assert n_topics(topics) == 3
    assert outlier_share(topics) == 0.2
    assert largest_topic_share(topics) == 0.3  # of all papers, outliers included
    assert outlier_share(np.array([0, 0, 1])) == 0.0
    assert largest_topic_share(np.array([0, 0, 1])) == pytest.approx(2 / 3)


def test_counts_without_papers_or_without_topics():
    assert (n_topics([]), outlier_share([]), largest_topic_share([])) == (0, None, None)
    assert (n_topics([-1, -1]), outlier_share([-1, -1]), largest_topic_share([-1, -1])) == (0, 1.0, None)


# --- compute_metrics ----------------------------------------------------------------------


def test_compute_metrics_returns_the_flat_schema_dict():
    texts = toy_corpus()
    topics = [0] * 20 + [1] * 19 + [-1]
    labels = ["cs.LG"] * 20 + ["q-bio"] * 20
    keywords = {-1: ["alpha beta"], 0: ["graph neural", "node", "edge", "message passing"], 1: PROTEINS}
    result = compute_metrics(texts, topics, keywords, labels)
    assert tuple(result) == METRIC_KEYS
    assert result["n_topics"] == 2
    assert result["outlier_share"] == 0.025
    assert result["largest_topic_share"] == 0.5
    assert result["diversity"] == 1.0
    assert result["npmi"] == round(npmi([GRAPHS, PROTEINS], texts), 6)
    assert 0.0 < result["nmi"] < 1.0 and 0.0 < result["ami"] < 1.0 and 0.0 < result["ari"] < 1.0
    for value in result.values():
        assert value == round(value, 6)


def test_compute_metrics_none_cases():
    texts = toy_corpus()
    topics = [0] * 40
    no_labels = compute_metrics(texts, topics, {0: GRAPHS})
    assert no_labels["nmi"] is no_labels["ami"] is no_labels["ari"] is None
    assert compute_metrics(texts, topics, {0: GRAPHS}, labels=[""] * 40)["nmi"] is None
    # one topic: still a coherence, and a diversity of 1.0
    assert no_labels["n_topics"] == 1 and no_labels["npmi"] is not None and no_labels["diversity"] == 1.0
    # no topic words at all: nothing to score
    empty = compute_metrics(texts, topics, {0: []})
    assert empty["npmi"] is None and empty["diversity"] is None
    nothing = compute_metrics([], [], {})
    assert nothing == dict.fromkeys(METRIC_KEYS) | {"n_topics": 0}
    with pytest.raises(ValueError, match="one of each per paper"):
        compute_metrics(texts, [0], {0: GRAPHS})


# --- OCTIS preprocessing ------------------------------------------------------------------


def test_octis_preprocess_lowercases_strips_lemmatises_and_drops_short_documents():
    texts = [
        "Graph Neural Networks: we studied 3 networks' message-passing (GNNs) in 2024!",
        "Too short.",
        "The proteins were folding; the enzymes’ binding sites changed “quickly”.",
        "",
    ]
    corpus = octis_preprocess(texts)
    assert corpus.indices == [0, 2]
    first, second = (text.split() for text in corpus.texts)
    # simplemma's lemmas, context-free: "passing" -> "pass" even in "message passing"
    assert first == ["graph", "neural", "network", "study", "network", "message", "pass", "gnns"]
    assert second == ["protein", "folding", "enzyme", "binding", "site", "change", "quickly"]
    assert "we" not in first and "the" not in second  # stop words
    assert all(word.isalpha() and word.islower() and len(word) >= 3 for text in corpus.texts for word in text.split())


def test_octis_preprocess_options():
    texts = ["Networks networks networks of graphs and graphs", "graphs graphs graphs graphs graphs and trees"]
    assert octis_preprocess(texts, lemmatize=False).texts[0].split() == ["networks"] * 3 + ["graphs"] * 2
    assert octis_preprocess(texts, min_words=6).indices == [1]  # graphs x5, trees
    # vocabulary filter, as OCTIS' own: only the most frequent word survives
    assert octis_preprocess(texts, max_features=1, min_words=1).texts == [
        "graph graph",
        "graph graph graph graph graph",
    ]
    assert octis_preprocess(texts, min_df=3, min_words=1).texts == []  # every word pruned
