"""Tokenised texts, term counts and c-TF-IDF for the label stage's fast route.

It must count as scikit-learn and BERTopic do, and its caches must give back exactly what
was stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from pipeline.config import LabelConfig
from pipeline.label import stop_words, term_counts_for
from pipeline.label.keywords import bertopic_keywords, ctfidf_keywords
from pipeline.memo import MemoStore, text_key
from pipeline.terms import (
    TOKEN_PATTERN,
    TermCountsArrays,
    TokenizedTexts,
    class_tfidf,
    term_counts,
    tokenize_texts,
    without,
)
from pipeline.token_rows import TokenRows, concat_texts, select_texts

WORDS = "graph neural network message passing protein folding speech audio the of and we model large".split()


def random_texts(seed: int, n: int = 40, odd_ones: bool = True) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(0, 25))) for _ in range(n)]
    return [*texts, "", "Émile's 3D-graph, 2024: naïve Bayes!", "THE OF AND"] if odd_ones else texts


def keyed(texts: list[str]) -> np.ndarray:
    return np.array([text_key(text) for text in texts], dtype="S16")


@pytest.mark.parametrize("ngram_max", [1, 2, 3])
def test_term_counts_equal_countvectorizer(ngram_max):
    texts = random_texts(ngram_max)
    stop = stop_words(LabelConfig())
    counts = term_counts(tokenize_texts(texts), stop, ngram_max)
    vectorizer = CountVectorizer(ngram_range=(1, ngram_max), stop_words=stop, token_pattern=TOKEN_PATTERN)
    expected = vectorizer.fit_transform(texts)
    names = counts.names(range(counts.matrix.shape[1]))
    assert sorted(names) == sorted(vectorizer.get_feature_names_out().tolist())
    column = {name: index for index, name in enumerate(vectorizer.get_feature_names_out())}
    assert (expected[:, [column[name] for name in names]] != counts.matrix).nnz == 0


def test_latex_commands_are_no_words_but_greek_letters_are():
    text = r"Codes over $\mathbb{F}_q$, \textbf{Novel} Ly$\alpha$ emitters, $\pi\pi$ scattering at $\infty$ \alphabet"
    assert tokenize_texts([text]).words(0) == [
        "codes", "over", "novel", "ly", "alpha", "emitters", "pi", "pi", "scattering", "at"
    ]  # fmt: skip
    assert tokenize_texts(["text mid right prime dots"]).words(0) == ["text", "mid", "right", "prime", "dots"]


def test_without_drops_only_stop_words_and_keeps_text_boundaries():
    tokens = tokenize_texts(["the graph of the protein", "", "the of"])
    kept = without(tokens, {"the", "of"})
    assert [kept.words(i) for i in range(3)] == [["graph", "protein"], [], []]


@pytest.mark.parametrize("reduce_frequent_words", [True, False])
def test_class_tfidf_equals_bertopic(reduce_frequent_words):
    from bertopic.vectorizers import ClassTfidfTransformer

    rng = np.random.default_rng(0)
    counts = rng.poisson(0.7, size=(6, 30)) * (rng.random((6, 30)) < 0.5)
    counts[:, 0] = 0  # a term no class uses
    counts[:, 1] += 1
    from scipy import sparse

    transformer = ClassTfidfTransformer(reduce_frequent_words=reduce_frequent_words)
    expected = transformer.fit_transform(sparse.csr_matrix(counts))
    ours = class_tfidf(sparse.csr_matrix(counts), reduce_frequent_words)
    assert np.allclose(ours.toarray(), expected.toarray())


@pytest.mark.parametrize("reduce_frequent_words", [True, False])
def test_keywords_equal_bertopic_route_on_unigrams(reduce_frequent_words):
    # BERTopic deletes every character but A-Za-z0-9 first ("3D-graph" -> "3Dgraph"): plain words only.
    texts = random_texts(7, n=60, odd_ones=False)
    labels = np.array([index % 3 - 1 for index in range(len(texts))])  # -1 is a class too
    config = LabelConfig(
        ngram_max=1, representation="none", reduce_frequent_words=reduce_frequent_words, keyword_min_share=0.0
    )  # no share bar: BERTopic has none
    tokens = tokenize_texts(texts)
    fast_topics, fast, _ = ctfidf_keywords(term_counts_for(tokens, config), labels, config)
    slow_topics, slow, _ = bertopic_keywords(texts, np.eye(len(texts)), labels, config, None, seed=0)
    assert fast_topics.tolist() == slow_topics.tolist()
    assert fast.keys() == slow.keys()
    for topic in fast:
        assert dict(fast[topic]) == pytest.approx(dict(slow[topic]))


@pytest.mark.parametrize("shortlist", [1, 300])  # 1: the bound fails and every term is summed
def test_group_words_are_the_best_summed_terms(shortlist, monkeypatch):
    monkeypatch.setattr("pipeline.label.keywords.GROUP_SHORTLIST", shortlist)
    texts = ["alpha beta", "alpha gamma", "beta gamma delta", "delta epsilon", "epsilon zeta", "zeta alpha"] * 3
    labels = np.arange(len(texts)) % 6
    config = LabelConfig(ngram_max=1, n_keywords=3)
    counts = term_counts_for(tokenize_texts(texts), config)
    _, _, group_words = ctfidf_keywords(counts, labels, config)
    # Brute force: size-weighted sum of the leaves' c-TF-IDF rows over every term.
    weights = class_tfidf(
        pd.get_dummies(labels).to_numpy(dtype=float).T @ counts.matrix.toarray()
    )  # one class per label, in id order
    for leaves in ([0, 1], [2, 3, 4], [0, 1, 2, 3, 4, 5]):
        summed = weights.toarray()[leaves].sum(axis=0)
        best = sorted(range(len(summed)), key=lambda term: (-summed[term], term))[:3]
        assert group_words(leaves) == counts.names([term for term in best if summed[term] > 0])


def test_selected_texts_equal_fresh_tokenisation():
    texts = random_texts(3)
    first, second = texts[:30], texts[20:]
    parts = [(keyed(first), tokenize_texts(first)), (keyed(second), tokenize_texts(second))]
    wanted = [texts[5], texts[-1], texts[25], texts[0], texts[-2]]
    selected = select_texts(parts, keyed(wanted).tolist())
    fresh = tokenize_texts(wanted)
    assert selected.vocabulary.tolist() == fresh.vocabulary.tolist()
    assert selected.tokens.tolist() == fresh.tokens.tolist()
    assert selected.offsets.tolist() == fresh.offsets.tolist()
    with pytest.raises(KeyError):
        select_texts(parts, keyed(["never tokenised"]).tolist())


def test_a_part_holding_exactly_the_wanted_texts_is_used_as_it_is():
    texts = random_texts(5)
    first, second = texts[:30], texts[20:]
    parts = [(keyed(first), tokenize_texts(first)), (keyed(second), tokenize_texts(second))]
    assert select_texts(parts, keyed(second).tolist()) is parts[1][1]
    # Same texts in another order: assembled, and equal to a fresh tokenisation.
    shuffled = second[::-1]
    selected = select_texts(parts, keyed(shuffled).tolist())
    assert selected is not parts[1][1]
    assert selected.tokens.tolist() == tokenize_texts(shuffled).tokens.tolist()


def test_a_first_part_holding_the_first_wanted_texts_is_joined_to_the_rest_as_fresh_tokenisation():
    texts = random_texts(6)
    head, later = texts[:30], [*texts[30:], "Zürich über alles", "aardvark graph"]  # words before and after
    wanted = [*head, *later, head[3]]  # and a text of the first part again, at the end
    parts = [(keyed(head), tokenize_texts(head)), (keyed(later), tokenize_texts(later))]
    fresh = tokenize_texts(wanted)
    for order in (parts, parts[::-1]):  # the joined route, and the general one
        selected = select_texts(order, keyed(wanted).tolist())
        assert selected.vocabulary.tolist() == fresh.vocabulary.tolist()
        assert selected.tokens.tolist() == fresh.tokens.tolist()
        assert selected.offsets.tolist() == fresh.offsets.tolist()


def test_joining_refuses_a_vocabulary_with_words_no_text_uses():
    head = tokenize_texts(["graph neural"])
    padded = TokenizedTexts(np.array(["graph", "neural", "unused"], dtype=object), head.tokens, head.offsets)
    with pytest.raises(KeyError, match="do not use"):
        concat_texts(padded, tokenize_texts(["speech"]))
    # select_texts then takes the general way, which keeps only the words in use.
    parts = [(keyed(["graph neural"]), padded), (keyed(["speech"]), tokenize_texts(["speech"]))]
    assert select_texts(parts, keyed(["graph neural", "speech"]).tolist()).vocabulary.tolist() == [
        "graph", "neural", "speech"]  # fmt: skip


def test_token_memo_round_trip_and_unreadable_shard(tmp_path):
    texts = random_texts(4)
    cache = MemoStore(tmp_path)
    keys = keyed(texts).tolist()
    cache.memo_rows("tokens/v1", keys, lambda indices: tokenize_texts([texts[i] for i in indices]), TokenRows())
    (cache.folder("tokens/v1") / "shard-garbage.npz").write_bytes(b"not a shard")
    stored, computed = cache.memo_rows("tokens/v1", keys, lambda indices: pytest.fail("tokenised again"), TokenRows())
    assert computed == 0
    assert [stored.words(i) for i in range(len(texts))] == [tokenize_texts([t]).words(0) for t in texts]


def test_term_counts_memo_keeps_the_latest_entries(tmp_path):
    counts = term_counts_for(tokenize_texts(random_texts(5)), LabelConfig())
    cache = MemoStore(tmp_path)
    for key in ("a", "b", "c"):
        cache.memo("term-counts", key, lambda: counts, TermCountsArrays(), keep=2)
    assert not (cache.folder("term-counts") / "a.npz").exists()  # the oldest went
    restored = cache.memo("term-counts", "c", lambda: pytest.fail("computed again"), TermCountsArrays(), keep=2)
    assert (restored.matrix != counts.matrix).nnz == 0
    assert restored.names(range(restored.matrix.shape[1])) == counts.names(range(counts.matrix.shape[1]))


@pytest.mark.parametrize("sort", [False, True])
def test_chunked_factorizer_gives_what_factorize_gives_all_at_once(sort):
    from pipeline.factorize import ChunkedFactorizer

    rng = np.random.default_rng(5)
    vocabulary = np.array(["graph", "Graph", "ΑΒΓ", "zeta", "a", "neural", "b-tree", "é", "e"], dtype=object)
    words = vocabulary[rng.integers(0, len(vocabulary), 500)].tolist()
    factorizer = ChunkedFactorizer()
    for chunk in (words[:3], [], words[3:100], words[100:417], words[417:]):  # any sizes, an empty one too
        factorizer.add(chunk)
    codes, uniques = factorizer.result(sort=sort)
    expected_codes, expected_uniques = pd.factorize(np.asarray(words, dtype=object), sort=sort)
    assert codes.dtype == np.int32 and np.array_equal(codes, expected_codes)
    assert list(uniques) == list(expected_uniques)
