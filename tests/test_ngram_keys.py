"""N-gram keys stay exact when n word ids overflow one int64 key: the words stored are the words written."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import LabelConfig
from pipeline.label import stop_words
from pipeline.label.phrases import build_phrase_index, extensions, phrase_tokens
from pipeline.terms import packed_ngrams, packed_rows, rows_found, unique_ngrams, unpacked_ngrams


@pytest.mark.parametrize("base", [50, 250_000, 3_000_000])
def test_unique_ngrams_are_numpys_unique_rows_at_any_vocabulary(base):
    # 250,000 ** 4 and 3,000,000 ** 3 pass 2 ** 63: one wrapped key would give other words.
    rng = np.random.default_rng(1)
    rows = rng.integers(0, base, size=(3000, 4)).astype(np.int64)
    rows[:, 0] = rng.integers(base - 50, base, 3000)  # high first words: the wrap is certain
    rows[1500:] = rows[:1500]
    keys = packed_rows([rows[:, column] for column in range(4)], base)
    words, index = unique_ngrams(keys, 4, base)
    expected, expected_index = np.unique(rows, axis=0, return_inverse=True)
    np.testing.assert_array_equal(words, expected)
    np.testing.assert_array_equal(index, expected_index.reshape(-1))
    np.testing.assert_array_equal(words[index], rows)
    assert (keys.shape[1] == 1) == (base**4 < 2**63)


def test_rows_found_finds_each_row_or_none():
    base = 300_000
    table = np.unique(np.random.default_rng(2).integers(0, base, size=(500, 4)), axis=0)
    rows = np.concatenate([table[::-3], table[:20] + 1])
    pack = lambda block: packed_rows([block[:, c] for c in range(block.shape[1])], base)  # noqa: E731
    found = rows_found(pack(table), pack(rows))
    expected = [next((i for i, t in enumerate(table.tolist()) if t == r), -1) for r in rows.tolist()]
    np.testing.assert_array_equal(found, expected)


def test_one_key_per_ngram_is_refused_where_it_would_wrap():
    block = np.array([[235_000, 1, 2, 3]], dtype=np.int32)
    with pytest.raises(ValueError, match="too large"):
        packed_ngrams(block, 235_371)
    with pytest.raises(ValueError, match="not packed"):
        unpacked_ngrams(np.zeros(1, dtype=np.int64), 4, 235_371)
    fits = np.array([[49_999, 1, 2, 3]], dtype=np.int32)  # 50,000 ** 4 < 2 ** 63
    np.testing.assert_array_equal(unpacked_ngrams(packed_ngrams(fits, 50_000), 4, 50_000), fits)


def test_four_word_terms_keep_their_words_past_int64():
    # 60,000 filler words written first take the low ids; the phrases' words come after them,
    # so (distinct words) ** 4 > 2 ** 63 and a 4-word term's words do not fit one key.
    n_words = 60_000
    filler = [f"w{index}x" for index in range(n_words)]
    titles = [" ".join(filler[start : start + 60]) for start in range(0, n_words, 60)]
    abstracts = ["Filler."] * len(titles)
    phrases = ["memorization of lava crystal", "zebra yak xylophone walrus", "quantum vortex neural sieve"]
    for copy in range(4):
        for phrase in phrases:
            titles.append(f"{phrase} for {filler[copy]}")
            abstracts.append(f"We study {phrase}.")
    index = build_phrase_index(phrase_tokens(titles, abstracts), stop_words(LabelConfig()), 2)
    assert len(index.keys) ** 4 >= 2**63
    four = {index.key_text(term) for term in range(index.papers.shape[1]) if len(index.term_keys(term)) == 4}
    assert set(phrases) <= four
    assert four <= set(phrases)  # no term of words that no paper writes in a row
    prefix, suffix = extensions(index)
    found = {}
    for term in range(index.papers.shape[1]):
        words = index.key_text(term).split()
        if len(words) == 4:
            found[" ".join(words)] = [index.key_text(int(p)) if p >= 0 else None for p in (prefix[term], suffix[term])]
    assert found["zebra yak xylophone walrus"] == ["zebra yak xylophone", "yak xylophone walrus"]
    assert found["memorization of lava crystal"] == ["memorization of lava", None]  # "of lava crystal": no term


def test_the_phrase_index_binary_matrix_marks_each_pair_once_whatever_its_index_width():
    from pipeline.label.phrases import _binary

    rows, columns = np.array([2, 0, 2, 2, 1, 0]), np.array([3, 1, 3, 0, 4, 1])
    small = _binary(rows, columns, (3, 5))
    assert small.toarray().tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 1, 0]]
    assert small.indices.dtype == np.int32 and small.has_canonical_format
    # Columns past int32 keep 64-bit coordinates (a term numbered 2**31 is not wrapped onto another).
    wide = _binary(rows, columns + 2**31, (3, 2**31 + 5))
    assert wide.indices.dtype == np.int64
    assert (wide.indices - 2**31).tolist() == small.indices.tolist() and wide.indptr.tolist() == small.indptr.tolist()
