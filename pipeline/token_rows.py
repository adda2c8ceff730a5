"""A run's tokenised texts from the per-text token memo: its codec, and texts assembled from stored parts.

The label stage keeps each text's tokens once (``store.cache.memo_rows`` with
:class:`TokenRows`); a run then asks for its texts in its own order, and
:func:`select_texts` assembles them from the stored parts, exactly as
:func:`pipeline.terms.tokenize_texts` would give them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.memo import key_rows, words_from_array, words_to_array
from pipeline.terms import TokenizedTexts, texts_from_words


def concat_texts(first: TokenizedTexts, second: TokenizedTexts) -> TokenizedTexts:
    """The texts of ``first`` followed by those of ``second``, as :func:`tokenize_texts` gives them for both.

    Each part's vocabulary must hold only words its texts use (as :func:`tokenize_texts` and
    :func:`select_texts` give them); raises KeyError otherwise.
    """
    for part in (first, second):
        if len(part.tokens) and not np.bincount(part.tokens, minlength=len(part.vocabulary)).all():
            raise KeyError("a part's vocabulary holds words its texts do not use")
    # The second part's words merged into the first's sorted vocabulary (code point order, as
    # pd.factorize(sort=True) sorts Python strings), without sorting the whole again.
    first_words, second_words = first.vocabulary.astype(str), second.vocabulary.astype(str)
    at = np.searchsorted(first_words, second_words)
    present = np.zeros(len(second_words), dtype=bool)
    if len(first_words):
        present = first_words[np.minimum(at, len(first_words) - 1)] == second_words
    new_at = at[~present]  # ascending: the second vocabulary is sorted too
    shift = np.cumsum(np.bincount(new_at, minlength=len(first_words) + 1))
    first_ids = np.arange(len(first_words)) + shift[: len(first_words)]
    second_ids = np.empty(len(second_words), dtype=np.int64)
    second_ids[present] = first_ids[at[present]]
    second_ids[~present] = new_at + np.arange(len(new_at))
    vocabulary = np.insert(first.vocabulary.astype(object), new_at, second.vocabulary.astype(object)[~present])
    tokens = np.concatenate([first_ids.astype(np.int32)[first.tokens], second_ids.astype(np.int32)[second.tokens]])
    offsets = np.concatenate([first.offsets, second.offsets[1:] + first.offsets[-1]]).astype(np.int64)
    return TokenizedTexts(vocabulary, tokens, offsets)


def select_texts(parts: Sequence[tuple[np.ndarray, TokenizedTexts]], wanted: Sequence[bytes]) -> TokenizedTexts:
    """The tokenised texts of the ``wanted`` keys, in that order, from (keys, texts) parts.

    Parts may overlap (the first holding a key wins) and each has its own vocabulary; the
    result is exactly what :func:`tokenize_texts` gives for the wanted texts. Raises
    KeyError when a wanted key is in no part.
    """
    wanted_keys = np.asarray(wanted, dtype="S16")
    for keys, part in parts:
        # The usual case after a first run: one part tokenised exactly these texts, in this order.
        if len(keys) == len(wanted_keys) and np.array_equal(np.asarray(keys, dtype="S16"), wanted_keys):
            return part
    if parts and 0 < len(parts[0][0]) < len(wanted_keys):
        # A feed's next run: the last run's texts (the first part), then the new day's.
        head_keys, head = parts[0]
        if np.array_equal(np.asarray(head_keys, dtype="S16"), wanted_keys[: len(head_keys)]):
            with contextlib.suppress(KeyError):  # else the general way below
                return concat_texts(head, select_texts(parts[1:], wanted[len(head_keys) :]))
    words = pd.Index(np.concatenate([part.vocabulary for _, part in parts]) if parts else [], dtype=object)
    codes, uniques = pd.factorize(words)
    shifted, lengths, starts = [], [], []
    vocabulary_start, token_start = 0, 0
    for _, part in parts:
        to_global = codes[vocabulary_start : vocabulary_start + len(part.vocabulary)]
        vocabulary_start += len(part.vocabulary)
        shifted.append(to_global[part.tokens] if len(part.tokens) else np.zeros(0, dtype=np.int64))
        lengths.append(part.lengths())
        starts.append(part.offsets[:-1] + token_start)
        token_start += len(part.tokens)
    if not parts:
        if wanted:
            raise KeyError("no tokenised text is cached")
        return texts_from_words([], np.zeros(0, dtype=np.int64))
    part_of, row_in = key_rows([keys for keys, _ in parts], wanted)
    rows = np.concatenate([[0], np.cumsum([len(part) for _, part in parts])])[part_of] + row_in
    all_tokens = np.concatenate(shifted)
    row_lengths = np.concatenate(lengths)[rows]
    row_starts = np.concatenate(starts)[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(row_lengths, out=offsets[1:])
    # Token j of the result is token (j - offsets[text]) of that text, at row_starts[text] + that.
    gather = np.arange(offsets[-1], dtype=np.int64) + np.repeat(row_starts - offsets[:-1], row_lengths)
    global_ids = all_tokens[gather]
    # Keep the words these texts use, renumbered in sorted order (a bincount, not a 15M-value sort).
    used = np.flatnonzero(np.bincount(global_ids, minlength=len(uniques)))
    vocabulary = np.asarray(uniques, dtype=object)[used]
    order = np.argsort(vocabulary.astype(str), kind="stable")
    new_id = np.zeros(len(uniques), dtype=np.int32)
    new_id[used[order]] = np.arange(len(order), dtype=np.int32)
    return TokenizedTexts(vocabulary[order], new_id[global_ids], offsets)


class TokenRows:
    """Tokenised texts as arrays (``pipeline.store`` codec): the per-text token memo."""

    def encode(self, value: TokenizedTexts) -> dict[str, np.ndarray]:
        return {
            "vocabulary": words_to_array(value.vocabulary),
            "tokens": value.tokens.astype(np.int32),
            "offsets": value.offsets.astype(np.int64),
        }

    def decode(self, arrays: Mapping[str, np.ndarray]) -> TokenizedTexts:
        return TokenizedTexts(words_from_array(arrays["vocabulary"]), arrays["tokens"], arrays["offsets"])

    def take(self, parts: Sequence[tuple[np.ndarray, TokenizedTexts]], keys: Sequence[bytes]) -> TokenizedTexts:
        return select_texts(parts, keys)
