"""The preview model's vectors with its tokens looked up word by word: model2vec's vectors, several times faster.

model2vec's vector of a text is the mean of its tokens' vectors, so at a million texts nearly all
of its time went into the Hugging Face tokenizer (~0.3-0.5 ms of one core a text) and into a Python
loop over the texts for the means. For the BERT tokenizer the preview model uses, the ids of an
ASCII text are those of its words, one after the other: the normaliser only lowercases ASCII
(and drops control characters), the pre-tokeniser splits at white space and makes each
punctuation character a word, and WordPiece splits each word alone. So :class:`WordIds` splits
such a text with one regular expression, numbers its words from a dictionary of the words seen
so far (each new word split into pieces once, by the tokenizer's own WordPiece model), and
expands and cuts the pieces with numpy, as the tokenizer truncates. Texts it cannot split this way exactly (a
non-ASCII character, an ASCII control character, an added token such as ``[UNK]`` written in the
text) go to the tokenizer as before. :func:`mean_vectors` then does model2vec's arithmetic for all
texts at once, in the same order of operations, so the vectors are bit-identical.

:func:`fits` says whether a loaded model is of the shape this module imitates (a lowercasing BERT
WordPiece tokenizer, no per-token weights or id mapping); other models keep model2vec's own
``encode``. ``tests/test_word_ids.py`` checks ids and vectors against model2vec's on the seed
documents and on texts built to break the imitation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

# After lowercasing, an ASCII text without control characters holds letters and digits (words),
# punctuation (every other printable character: one word each, as BERT's pre-tokeniser splits
# it) and the white space that separates them.
_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
# ASCII control characters other than tab, line feed and carriage return: BERT's normaliser drops
# them, joining their neighbours into one word, which the expression above would not.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Words numbered before the dictionary starts again (a worker embeds shard after shard).
MAX_WORDS = 2_000_000


def fits(model: Any) -> bool:
    """Whether a model2vec ``StaticModel`` is of the shape :class:`WordIds` and :func:`mean_vectors` imitate."""
    spec = json.loads(model.tokenizer.to_str())
    normalizer, pre_tokenizer, kind = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}, spec["model"]
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("lowercase") is True
        and normalizer.get("clean_text") is True
        and pre_tokenizer.get("type") == "BertPreTokenizer"
        and kind.get("type") == "WordPiece"
        and spec.get("post_processor") is None
        and model.weights is None
        and model.token_mapping is None
        and model.embedding.dtype in (np.float16, np.float32)
    )


class _Numbered(dict[str, int]):
    """Words numbered in the order they were first looked up; ``fresh`` holds those not yet split into pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.fresh: list[str] = []

    def __missing__(self, word: str) -> int:
        number = self[word] = len(self)
        self.fresh.append(word)
        return number


class WordIds:
    """Token ids of texts, as ``tokenizer.encode_batch_fast(texts, add_special_tokens=False)`` gives them.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` that :func:`fits` accepts. ``drop_id`` is left out
    of every text's ids after the truncation (model2vec drops the unknown token's id).
    """

    def __init__(self, tokenizer: Any, drop_id: int | None = None) -> None:
        from tokenizers import Tokenizer

        # A copy that never truncates splits the words (a word's pieces must not depend on the
        # truncation of the call that first met it) and the texts that cannot be split here.
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self.tokenizer.no_truncation()
        self.drop_id = drop_id
        self.added = [token.content for token in tokenizer.get_added_tokens_decoder().values()]
        self._reset()

    def _reset(self) -> None:
        self.numbers = _Numbered()
        # Word w's pieces are piece_ids[piece_starts[w]:piece_starts[w + 1]], for the words split so far;
        # both arrays grow by doubling (a new word in every call must not copy all the words before it).
        self.piece_ids = np.zeros(1 << 16, dtype=np.int64)
        self.piece_starts = np.zeros(1 << 14, dtype=np.int64)
        self.split_words = 0

    def _exact(self, text: str) -> bool:
        return text.isascii() and _CONTROL.search(text) is None and not any(token in text for token in self.added)

    def _split_new_words(self) -> None:
        known, new_words = self.split_words, self.numbers.fresh
        if not new_words:
            return
        # A word here is normalised and pre-tokenised already: WordPiece alone splits it, as in a text.
        split = self.tokenizer.model.tokenize
        pieces = [[token.id for token in split(word)] for word in new_words]
        flat = np.fromiter((i for ids in pieces for i in ids), np.int64)
        ends = self.piece_starts[known] + np.cumsum([len(ids) for ids in pieces], dtype=np.int64)
        self.piece_starts = _room(self.piece_starts, known + 1 + len(pieces))
        self.piece_ids = _room(self.piece_ids, int(ends[-1]))
        self.piece_starts[known + 1 : known + 1 + len(pieces)] = ends
        self.piece_ids[int(ends[-1]) - len(flat) : int(ends[-1])] = flat
        self.split_words = len(self.numbers)
        new_words.clear()

    def __call__(self, texts: Sequence[str], limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        """All texts' token ids, each text's cut to ``limit``, and how many each text has.

        Returns (ids, ndarray of shape (n_ids,); counts, ndarray of shape (len(texts),)). Text i's
        ids are ``ids[offsets[i]:offsets[i + 1]]`` with ``offsets`` the running sum of ``counts``.
        """
        if len(self.numbers) > MAX_WORDS:
            self._reset()
        exact = [self._exact(text) for text in texts]
        numbers: list[int] = []
        word_counts = np.zeros(len(texts), dtype=np.int64)
        lookup = self.numbers.__getitem__
        for index, text in enumerate(texts):
            if exact[index]:
                words = _WORDS.findall(text.lower())
                numbers.extend(map(lookup, words))
                word_counts[index] = len(words)
        self._split_new_words()
        words_of = np.asarray(numbers, dtype=np.int64)
        lengths = self.piece_starts[words_of + 1] - self.piece_starts[words_of]
        text_of_word = np.repeat(np.arange(len(texts)), word_counts)
        piece_counts = np.bincount(text_of_word, weights=lengths, minlength=len(texts)).astype(np.int64)
        # Each word's pieces in text order: where its first piece is in piece_ids, then the next ones.
        first = np.repeat(self.piece_starts[words_of] - (np.cumsum(lengths) - lengths), lengths)
        ids = self.piece_ids[first + np.arange(len(first))]
        text_of = np.repeat(np.arange(len(texts)), piece_counts)
        others = [index for index, fast in enumerate(exact) if not fast]
        if others:
            encoded = self.tokenizer.encode_batch_fast([texts[index] for index in others], add_special_tokens=False)
            other_ids = [np.asarray(encoding.ids, dtype=np.int64) for encoding in encoded]
            piece_counts[others] = [len(found) for found in other_ids]
            ids = np.concatenate([ids, *other_ids])
            text_of = np.concatenate([text_of, np.repeat(others, piece_counts[others])])
            order = np.argsort(text_of, kind="stable")
            ids, text_of = ids[order], text_of[order]
        offsets = np.concatenate([[0], np.cumsum(piece_counts)])
        keep = np.arange(len(ids)) - offsets[text_of] < (limit if limit is not None else len(ids) + 1)
        if self.drop_id is not None:
            keep &= ids != self.drop_id
        ids, text_of = ids[keep], text_of[keep]
        return ids, np.bincount(text_of, minlength=len(texts))


def _room(array: np.ndarray, size: int) -> np.ndarray:
    """``array``, or a copy twice as long or more, with room for ``size`` items."""
    if size <= len(array):
        return array
    grown = np.zeros(max(size, 2 * len(array)), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def mean_vectors(
    table: np.ndarray, dtype: np.dtype, ids: np.ndarray, counts: np.ndarray, normalize: bool
) -> np.ndarray:
    """model2vec's vectors of texts given their ids (:class:`WordIds`), ndarray of shape (len(counts), dim), ``dtype``.

    ``table`` is the model's embedding in float32 (exact: it is float16 or float32), ``dtype`` the
    embedding's own.

    The same operations as ``StaticModel._encode_batch`` without weights or mapping, in the same
    order: numpy's mean of a text's token vectors (float32 for a float16 embedding) adds them one
    after the other to zero, then divides by the count and rounds to the embedding's dtype; texts
    without tokens stay zero; then, with ``normalize``, each is divided by its float32 norm plus
    1e-32. Here the k-th tokens of all texts are added at once, longest texts first.
    """
    out = np.zeros((len(counts), table.shape[1]), dtype=dtype)
    held = np.flatnonzero(counts)
    if len(held):
        held = held[np.argsort(-counts[held], kind="stable")]  # longest first: the texts still adding are a prefix
        lengths = counts[held]
        starts = (np.cumsum(counts) - counts)[held]
        sums = np.zeros((len(held), table.shape[1]), dtype=np.float32)
        for place in range(int(lengths[0])):
            adding = int(np.searchsorted(-lengths, -place, side="left"))  # texts with more than `place` tokens
            sums[:adding] += table[ids[starts[:adding] + place]]
        np.true_divide(sums, lengths[:, None].astype(np.intp), out=sums, casting="unsafe")
        out[held] = sums.astype(dtype)
    if not normalize:
        return out
    out32 = out.astype(np.float32)
    norm = np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32
    return (out32 / norm).astype(out.dtype)
