"""The papers' words, tokenised once, and the counts that c-TF-IDF, topic names and NPMI need.

Tokenising 75,000 abstracts with a regular expression takes about 15 s, and every label
setting change used to pay it again (scikit-learn's CountVectorizer inside BERTopic, then
NPMI, then the topic names, each on its own). Here a text is tokenised once into ids of a
vocabulary (:class:`TokenizedTexts`), the label stage keeps those per text between runs
(``store.cache.memo_rows``, ``pipeline.token_rows``), and everything else is integer
arithmetic on the ids:

- :func:`term_counts`: the document-term matrix of 1- to n-grams without stop words, as
  CountVectorizer builds it (same token pattern, lowercase, stop words removed before the
  n-grams are formed), except that n-grams never span two papers;
- :func:`class_tfidf`: BERTopic's ``ClassTfidfTransformer(reduce_frequent_words=True)``;
- :func:`phrase_followers`: which word follows a key phrase in the raw text ("large
  language" -> "models"), for topic names.

Pure functions, no I/O; :class:`TermCountsArrays` is the codec through which the store keeps
term counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.factorize import FACTORIZE_CHUNK_TEXTS, ChunkedFactorizer
from pipeline.memo import csr_fields, csr_from, words_from_array, words_to_array

# Words start with a letter and have two or more characters: keeps "3d", "2024" and "_" out.
# A LaTeX command is no word ("\mathbb{R}", "\textbf{...}", "\infty" gave keywords and names
# such as "Linear codes, mathbb"), except a Greek letter, which physics abstracts name things
# with ("Ly$\alpha$ galaxies", "$\pi\pi$ scattering"). Texts are lowercased first.
GREEK_LETTERS = frozenset(
    """alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi omicron pi
    varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega""".split()
)
TOKEN_PATTERN = r"(?u)(?<!\\)\b[^\W\d_][^\W_]+\b|(?<=\\)(?:" + "|".join(sorted(GREEK_LETTERS)) + r")\b"
# scikit-learn's English stop words (``sklearn.feature_extraction.text.ENGLISH_STOP_WORDS``; a
# test keeps the two equal). Written out because importing scikit-learn for them costs about
# a second, and the label stage, rerun whenever a label setting changes, needs nothing else from it.
ENGLISH_STOP_WORDS = frozenset(
    """
    a about above across after afterwards again against all almost alone along already also although
    always am among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere
    are around as at back be became because become becomes becoming been before beforehand behind being
    below beside besides between beyond bill both bottom but by call can cannot cant co con could
    couldnt cry de describe detail do done down due during each eg eight either eleven else elsewhere
    empty enough etc even ever every everyone everything everywhere except few fifteen fifty fill find
    fire first five for former formerly forty found four from front full further get give go had has
    hasnt have he hence her here hereafter hereby herein hereupon hers herself him himself his how
    however hundred i ie if in inc indeed interest into is it its itself keep last latter latterly least
    less ltd made many may me meanwhile might mill mine more moreover most mostly move much must my
    myself name namely neither never nevertheless next nine no nobody none noone nor not nothing now
    nowhere of off often on once one only onto or other others otherwise our ours ourselves out over own
    part per perhaps please put rather re same see seem seemed seeming seems serious several she should
    show side since sincere six sixty so some somehow someone something sometime sometimes somewhere
    still such system take ten than that the their them themselves then thence there thereafter thereby
    therefore therein thereupon these they thick thin third this those though three through throughout
    thru thus to together too top toward towards twelve twenty two un under until up upon us very via
    was we well were what whatever when whence whenever where whereafter whereas whereby wherein
    whereupon wherever whether which while whither who whoever whole whom whose why will with within
    without would yet you your yours yourself yourselves
    """.split()
)


@dataclass(frozen=True)
class TokenizedTexts:
    """Texts as token ids.

    vocabulary: sorted unique words (object ndarray of str); tokens: int32 ids, all texts
    concatenated; offsets: int64 (n_texts + 1), text i is ``tokens[offsets[i]:offsets[i + 1]]``.
    """

    vocabulary: np.ndarray
    tokens: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def words(self, index: int) -> list[str]:
        """The tokens of text ``index`` as words (for tests and debugging)."""
        return self.vocabulary[self.tokens[self.offsets[index] : self.offsets[index + 1]]].tolist()

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def text_of_token(self) -> np.ndarray:
        """int32 (n_tokens,): the text each token belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int32), self.lengths())

    def used_words(self) -> set[str]:
        """The words that occur in at least one text."""
        return set(self.vocabulary[np.flatnonzero(np.bincount(self.tokens, minlength=len(self.vocabulary)))].tolist())

    def ids_of(self, words: Sequence[str]) -> np.ndarray:
        """The id of each word, -1 for a word not in the vocabulary."""
        if len(self.vocabulary) == 0:
            return np.full(len(words), -1, dtype=np.int64)
        query = np.asarray(list(words), dtype=object)
        position = np.searchsorted(self.vocabulary, query)
        position = np.minimum(position, len(self.vocabulary) - 1)
        return np.where(self.vocabulary[position] == query, position, -1).astype(np.int64)


def tokenize_texts(texts: Sequence[str], token_pattern: str = TOKEN_PATTERN) -> TokenizedTexts:
    """Lowercased words of each text, in order, stop words kept (each use filters its own)."""
    pattern = re.compile(token_pattern)
    lengths = np.zeros(len(texts), dtype=np.int64)
    factorizer = ChunkedFactorizer()
    for start in range(0, len(texts), FACTORIZE_CHUNK_TEXTS):
        flat: list[str] = []
        for index in range(start, min(start + FACTORIZE_CHUNK_TEXTS, len(texts))):
            words = pattern.findall(texts[index].lower())
            flat.extend(words)
            lengths[index] = len(words)
        factorizer.add(flat)
    codes, vocabulary = factorizer.result(sort=True)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenizedTexts(vocabulary, codes, offsets)


def texts_from_words(flat: list[str] | np.ndarray, lengths: np.ndarray) -> TokenizedTexts:
    """Ids over a sorted vocabulary, so that the same texts always give the same arrays."""
    codes, uniques = pd.factorize(np.asarray(flat, dtype=object), sort=True)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenizedTexts(np.asarray(uniques, dtype=object), codes.astype(np.int32), offsets)


def without(texts: TokenizedTexts, stop_words: Collection[str]) -> TokenizedTexts:
    """The same texts with the stop words taken out (the vocabulary is kept as it is)."""
    stop = np.isin(texts.vocabulary.astype(str), np.asarray(sorted(stop_words), dtype=str))
    keep = ~stop[texts.tokens] if len(texts.tokens) else np.zeros(0, dtype=bool)
    kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    offsets = kept_before[texts.offsets]
    return TokenizedTexts(texts.vocabulary, texts.tokens[keep], offsets)


@dataclass(frozen=True)
class TermCounts:
    """A document-term matrix of 1- to n-grams.

    matrix: csr (n_texts, n_terms) int32; ngrams[n - 1]: int32 (n_terms_n, n) word ids of the
    n-grams; terms are numbered 1-grams first, then 2-grams, ... each block in the order of
    its ngrams rows.
    """

    matrix: sparse.csr_matrix
    vocabulary: np.ndarray
    ngrams: tuple[np.ndarray, ...]

    def names(self, term_ids: Sequence[int]) -> list[str]:
        """Each term as its words joined by spaces."""
        return term_names(self.vocabulary, self.ngrams, term_ids)


def term_names(vocabulary: np.ndarray, ngrams: Sequence[np.ndarray], term_ids: Sequence[int]) -> list[str]:
    """Terms numbered as in :class:`TermCounts` (1-grams first), each as its words joined by spaces."""
    starts = np.cumsum([0] + [len(block) for block in ngrams])
    names = []
    for term in term_ids:
        block = int(np.searchsorted(starts, term, side="right")) - 1
        names.append(" ".join(vocabulary[ngrams[block][term - starts[block]]].tolist()))
    return names


def words_per_key(base: int) -> int:
    """How many word ids (digits in ``base``) one int64 key holds without overflowing."""
    width = 1
    while width < 64 and max(base, 2) ** (width + 1) < 2**63:
        width += 1
    return width


def packed_rows(columns: Sequence[np.ndarray], base: int) -> np.ndarray:
    """Rows of word ids (one array per word) packed as digits in ``base``: int64 (n_rows, n_keys).

    Each key holds :func:`words_per_key` words, so no key overflows, and the rows of keys sort
    as the rows of words do (lexicographically); while all words fit one key there is one column.
    """
    width = words_per_key(base)
    n_rows = len(columns[0]) if columns else 0
    keys = np.zeros((n_rows, max(-(-len(columns) // width), 1)), dtype=np.int64)
    for offset, ids in enumerate(columns):
        keys[:, offset // width] = keys[:, offset // width] * base + np.asarray(ids, dtype=np.int64)
    return keys


def unique_ngrams(keys: np.ndarray, n: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct n-grams among ``keys`` (rows of :func:`packed_rows`) and each row's index.

    Returns int32 (n_distinct, n) word ids in sorted (lexicographic) order, and int (n_rows,) the row of each key.
    """
    unique_keys, index = _unique_rows(keys)
    return unpacked_ngrams(unique_keys, n, base), index


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of int64 (m, k) keys, sorted, and the row of each key (one 1-D sort for k = 1)."""
    if keys.shape[1] == 1:
        unique_keys, index = np.unique(keys[:, 0], return_inverse=True)
        return unique_keys[:, None], index.reshape(-1)
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    new = np.ones(len(ordered), dtype=bool)
    new[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    index = np.empty(len(keys), dtype=np.int64)
    index[order] = np.cumsum(new) - 1
    return ordered[new], index


def rows_found(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Where each of ``rows`` is in ``table`` (distinct rows; both of :func:`packed_rows`), -1 where it is not."""
    if len(table) == 0 or len(rows) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    unique_keys, index = _unique_rows(np.concatenate([table, rows]))
    at = np.full(len(unique_keys), -1, dtype=np.int64)
    at[index[: len(table)]] = np.arange(len(table))
    return at[index[len(table) :]]


def unpacked_ngrams(keys: np.ndarray, n: int, base: int) -> np.ndarray:
    """The n word ids packed in each key (digits in ``base``), int32 (len(keys), n): :func:`packed_rows` undone.

    ``keys`` is 1-D (all n words in one key, as :func:`packed_ngrams` packs them) or rows of
    :func:`packed_rows`; n word ids that one key cannot hold are refused, never read from a wrapped key.
    """
    width = words_per_key(base)
    keys = keys[:, None] if keys.ndim == 1 else keys
    if keys.shape[1] != max(-(-n // width), 1):
        raise ValueError(f"{n} word ids of {base} words are not packed in {keys.shape[1]} int64 keys")
    words = np.zeros((len(keys), n), dtype=np.int32)
    for column in range(keys.shape[1]):
        remainder = keys[:, column].copy()
        for offset in reversed(range(column * width, min(n, (column + 1) * width))):
            words[:, offset] = remainder % base
            remainder //= base
    return words


def packed_ngrams(block: np.ndarray, base: int) -> np.ndarray:
    """Each row of n word ids (an n-gram block) packed as digits in ``base`` in one int64 key, sorted as the rows.

    Refuses n-grams whose keys could overflow (see :func:`packed_rows` for those).
    """
    n = block.shape[1] if block.ndim == 2 else 0
    if n > words_per_key(base):
        raise ValueError(f"a vocabulary of {base} words is too large for {n}-grams")
    return packed_rows([block[:, offset] for offset in range(n)], base)[:, 0] if n else np.zeros(len(block), np.int64)


def term_counts(texts: TokenizedTexts, stop_words: Collection[str], ngram_max: int) -> TermCounts:
    """How often each 1- to ``ngram_max``-gram occurs in each text, stop words removed first."""
    filtered = without(texts, stop_words)
    tokens = filtered.tokens.astype(np.int64)
    text_of = filtered.text_of_token()
    n_words = max(len(texts.vocabulary), 1)
    if n_words**ngram_max >= 2**62:
        raise ValueError(f"a vocabulary of {n_words} words is too large for {ngram_max}-grams")
    rows, columns, blocks = [], [], []
    n_terms = 0
    for n in range(1, ngram_max + 1):
        if len(tokens) < n:
            blocks.append(np.zeros((0, n), dtype=np.int32))
            continue
        count = len(tokens) - n + 1
        same_text = text_of[:count] == text_of[n - 1 :]
        starts = np.flatnonzero(same_text)
        keys = packed_rows([tokens[starts + offset] for offset in range(n)], n_words)
        words, term = unique_ngrams(keys, n, n_words)
        blocks.append(words)
        rows.append(text_of[starts])
        columns.append(term + n_terms)
        n_terms += len(words)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
    column = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    matrix = sparse.csr_matrix(
        (np.ones(len(row), dtype=np.int32), (row, column)), shape=(len(texts), n_terms), dtype=np.int32
    )
    matrix.sum_duplicates()
    return TermCounts(matrix, texts.vocabulary, tuple(blocks))


def class_tfidf(class_counts: sparse.csr_matrix, reduce_frequent_words: bool = True) -> sparse.csr_matrix:
    """c-TF-IDF of a (n_classes, n_terms) count matrix, as BERTopic computes it.

    That is ``ClassTfidfTransformer(reduce_frequent_words=...)`` (a test compares them): the
    l1-normalised term frequency in the class (its square root when ``reduce_frequent_words``),
    times log(1 + A / f(t)), where A is the mean number of words per class and f(t) the term's
    frequency over all classes.
    """
    counts = sparse.csr_matrix(class_counts, dtype=np.float64)
    frequency = np.asarray(counts.sum(axis=0)).ravel()
    average_words = int(counts.sum(axis=1).mean()) if counts.shape[0] else 0
    with np.errstate(divide="ignore"):
        idf = np.log(average_words / frequency + 1)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    # Element-wise on the stored values: sparse diagonal products cost 10x more at 5M values.
    row_of_value = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    frequency_in_class = counts.data / totals[row_of_value]
    if reduce_frequent_words:
        frequency_in_class = np.sqrt(frequency_in_class)
    data = frequency_in_class * idf[counts.indices]
    return sparse.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)


def token_stream(texts: TokenizedTexts, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token ids of the texts ``rows`` one after another, and the row each token comes from.

    The phrase functions below build it themselves; pass it to them (``stream=``) to build it once
    for many phrases of the same texts.
    """
    lengths = texts.lengths()[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.arange(offsets[-1], dtype=np.int64) + np.repeat(texts.offsets[:-1][rows] - offsets[:-1], lengths)
    return texts.tokens[gather], np.repeat(np.arange(len(rows), dtype=np.int32), lengths)


def phrase_spellings(
    texts: TokenizedTexts,
    rows: np.ndarray,
    phrase: Sequence[str],
    stream: tuple[np.ndarray, np.ndarray] | None = None,
) -> Counter[str]:
    """How often a two-word ``phrase`` is written as such and with one word between, in the texts ``rows``.

    Stop words are removed before n-grams are counted, so "chain of thought" is counted as the
    key phrase "chain thought": ``{"chain thought": 0, "chain of thought": 41}`` says how to write it.
    """
    spellings: Counter[str] = Counter()
    ids = texts.ids_of(phrase)
    if len(phrase) != 2 or (ids < 0).any():
        return spellings
    words, text_of = token_stream(texts, rows) if stream is None else stream
    first, last = ids
    adjacent = (words[:-1] == first) & (words[1:] == last) & (text_of[:-1] == text_of[1:])
    spellings[" ".join(phrase)] = int(adjacent.sum())
    gapped = np.flatnonzero((words[:-2] == first) & (words[2:] == last) & (text_of[:-2] == text_of[2:]))
    for middle in texts.vocabulary[words[gapped + 1]].tolist():
        spellings[f"{phrase[0]} {middle} {phrase[1]}"] += 1
    return spellings


def phrase_followers(
    texts: TokenizedTexts,
    rows: np.ndarray,
    phrase: Sequence[str],
    stream: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[str]:
    """The word right after each use of ``phrase`` (its words adjacent, in order) in the texts ``rows``."""
    ids = texts.ids_of(phrase)
    if len(phrase) == 0 or (ids < 0).any():
        return []
    words, text_of = token_stream(texts, rows) if stream is None else stream
    n = len(ids)
    if len(words) <= n:
        return []
    count = len(words) - n
    match = text_of[:count] == text_of[n:]  # the follower is in the same text
    for offset, word in enumerate(ids):
        match &= words[offset : offset + count] == word
    return texts.vocabulary[words[np.flatnonzero(match) + n]].tolist()


class TermCountsArrays:
    """A document-term matrix as arrays (``pipeline.store`` codec): the term-counts memo."""

    def encode(self, value: TermCounts) -> dict[str, np.ndarray]:
        return {
            **csr_fields(value.matrix),
            "vocabulary": words_to_array(value.vocabulary),
            "ngram_max": np.array(len(value.ngrams)),
            **{f"ngrams_{n}": block for n, block in enumerate(value.ngrams, start=1)},
        }

    def decode(self, arrays: Mapping[str, np.ndarray]) -> TermCounts:
        ngrams = tuple(arrays[f"ngrams_{n}"] for n in range(1, int(arrays["ngram_max"]) + 1))
        return TermCounts(csr_from(arrays), words_from_array(arrays["vocabulary"]), ngrams)
