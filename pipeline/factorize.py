"""Factorizing a long sequence of words with bounded memory (the label stage's tokenizers at 1M papers)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Texts whose words are held as Python strings at once: a word is a ~55-byte object, so a
# million abstracts' 200 million words would take 12 GB; 20,000 texts' take about 250 MB.
FACTORIZE_CHUNK_TEXTS = 20_000


class ChunkedFactorizer:
    """``pd.factorize`` of a long sequence of words fed in chunks, with bounded memory.

    The codes of each chunk are kept as int32 and the words themselves dropped; a dict holds
    each distinct word once. :meth:`result` gives exactly what ``pd.factorize`` of all the
    words at once gives: codes in order of first appearance, or over the sorted words.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.codes: list[np.ndarray] = []

    def add(self, words: list[str]) -> None:
        local, uniques = pd.factorize(np.asarray(words, dtype=object))
        ids = self.ids
        fresh = (ids.setdefault(word, len(ids)) for word in uniques)
        to_global = np.fromiter(fresh, dtype=np.int64, count=len(uniques))
        self.codes.append(to_global[local].astype(np.int32) if len(local) else np.zeros(0, dtype=np.int32))

    def result(self, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Codes (int32, one per word fed) and the distinct words (object ndarray)."""
        words = np.empty(len(self.ids), dtype=object)
        words[:] = list(self.ids)
        codes = np.concatenate(self.codes) if self.codes else np.zeros(0, dtype=np.int32)
        if not sort:
            return codes, words
        order = np.argsort(words.astype(str), kind="stable") if len(words) else np.zeros(0, dtype=np.int64)
        rank = np.empty(len(words), dtype=np.int32)
        rank[order] = np.arange(len(words), dtype=np.int32)
        return rank[codes] if len(codes) else codes, words[order]
