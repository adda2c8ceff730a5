"""The label stage's fast paths give what the plain computations give: spellings, places, sums, row values."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import sparse

from pipeline.config import LabelConfig
from pipeline.label import stop_words
from pipeline.label.phrases import PhraseIndex, _row_values, build_phrase_index, phrase_tokens
from pipeline.label.spelling import _distinct_rows, chosen_spellings, spell


def scanned_spelling(index: PhraseIndex, terms: list[int], sample: np.ndarray | None = None) -> dict[int, str]:
    """``spell`` as a full scan: every place of the texts hashed and looked up (the reference)."""
    forms: dict[int, Counter[tuple[int, ...]]] = {term: Counter() for term in terms}
    text = index.text
    word = text.words if sample is None else np.where(np.isin(text.paper_of, sample), text.words, -1)
    wanted = {tuple(index.term_keys(term).tolist()): term for term in forms}
    evidence: Counter[tuple[int, bool]] = Counter()
    for n in sorted({len(keys) for keys in wanted}):
        for at in range(len(word) - n + 1):
            term = wanted.get(tuple(word[at : at + n].tolist()))
            if term is None:
                continue
            forms[term][tuple(text.tokens[at : at + n].tolist())] += 1
            for o in range(n):
                evidence[(int(text.tokens[at + o]), bool(~text.in_title[at + o] & ~text.opens[at + o]))] += 1
    # The counting above is the reference; picking the form from the counts is shared.
    return chosen_spellings(index, forms, evidence)


PHRASES = ["Large Language Models", "large language models", "LLMs", "Chain-of-Thought prompting", "3D scenes",
           "Bayesian optimisation of neural networks", "bayesian Optimisation of Neural Networks"]  # fmt: skip


@pytest.mark.parametrize("n_words", [300, 60_000])
def test_spelling_finds_the_uses_a_full_scan_finds(n_words):
    # 60,000 distinct words, all written before the phrases: their words get ids above 60,000 and
    # 4 word ids pass 2 ** 63 in one packed key (the index keeps them in two).
    rng = np.random.default_rng(7)
    vocabulary = np.array([f"w{index}x" for index in range(n_words)])
    titles = [" ".join(vocabulary[(np.arange(60) + 60 * paper) % n_words].tolist()) for paper in range(1000)]
    abstracts = ["Filler."] * len(titles)
    for _ in range(600):
        filler = " ".join(vocabulary[rng.integers(0, n_words, 30)].tolist())
        phrases = [PHRASES[i] for i in rng.integers(0, len(PHRASES), 3)]
        titles.append(f"{phrases[0]} and {filler}")
        abstracts.append(f"{filler}. We study {phrases[1]}. {phrases[2]} with {filler[:80]}.")
    index = build_phrase_index(phrase_tokens(titles, abstracts), stop_words(LabelConfig()), 2)
    assert (max(len(index.keys), 1) ** 4 >= 2**63) == (n_words > 55_000)
    sizes = np.asarray(index.papers.sum(axis=0)).ravel()
    terms = np.argsort(-sizes, kind="stable")[:150].tolist() + rng.choice(len(sizes), 100, replace=False).tolist()
    four_words = [term for term in range(len(sizes)) if len(index.term_keys(term)) == 4]
    terms = list(dict.fromkeys(terms + four_words[:50]))
    assert four_words and any(len(index.term_keys(term)) == 3 for term in terms)
    assert spell(index, terms) == scanned_spelling(index, terms)
    sample = np.sort(rng.choice(len(titles), 300, replace=False))
    assert spell(index, terms, sample) == scanned_spelling(index, terms, sample)


@pytest.mark.parametrize("wide", [False, True])
def test_distinct_rows_are_numpys_unique_rows(wide):
    rng = np.random.default_rng(3)
    high = 2**40 if wide else 5  # wide: the ranks' product passes int64, and numpy's own unique is used
    rows = rng.integers(0, high, size=(2000, 4)).astype(np.int64)
    rows[1000:] = rows[:1000]
    expected_rows, expected_counts = np.unique(rows, axis=0, return_counts=True)
    found_rows, found_counts = _distinct_rows(rows)
    np.testing.assert_array_equal(found_rows, expected_rows)
    np.testing.assert_array_equal(found_counts, expected_counts)


def test_a_words_places_are_those_of_a_stable_sort():
    titles = ["Graph neural networks for graphs", "Neural graph models. Graph of graphs", "Models of neural models"]
    tokens = phrase_tokens(titles * 40, ["A graph, a model and a network."] * 120)
    order = np.argsort(tokens.words, kind="stable")
    for key in range(-1, len(tokens.keys)):
        expected = order[tokens.words[order] == key]
        np.testing.assert_array_equal(tokens.positions(key), expected)
    assert len(tokens.positions(tokens.key_id["graph"])) > 100


def test_row_values_are_scipys_column_indexing():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, k = int(rng.integers(1, 500)), int(rng.integers(0, 50))
        columns = rng.integers(0, n, k)
        row = sparse.csr_matrix((rng.integers(1, 5, k).astype(np.int32), columns, [0, k]), shape=(1, n))  # unsorted
        wanted = rng.integers(0, n, int(rng.integers(1, 60)))
        expected = np.asarray(row[:, wanted].todense()).ravel()
        found = _row_values(row, wanted)
        np.testing.assert_array_equal(found, expected)
        assert found.dtype == expected.dtype


def test_phrases_are_ranked_best_first_as_a_sort_by_score_then_term():
    """best_first orders as np.lexsort((terms, -score)): zero scores (most of a large group's) last, by term."""
    from pipeline.label.phrases import best_first

    rng = np.random.default_rng(3)
    for size in (0, 1, 7, 500):
        terms = rng.permutation(10 * size + 1)[:size].astype(np.int32)
        score = np.where(rng.random(size) < 0.6, 0.0, rng.choice([0.5, 1.25, 2.0], size) * rng.random(size).round(1))
        np.testing.assert_array_equal(best_first(terms, score), np.lexsort((terms, -score)))
