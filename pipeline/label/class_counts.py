"""Term counts per topic (a class x term matrix), counted in parts and summed: c-TF-IDF over every paper.

c-TF-IDF needs of the papers only sums per topic: how often each term occurs in the topic's
papers (``counts``), in how many of them (``holding``), and how many papers each topic has.
Sums add up, so a pile too large to tokenise in one process is counted in parts, each part
on a worker (``pipeline.engine``: in this process for the local engine, on Dask workers
otherwise), and the parts' matrices are added here one at a time (:func:`summed`). Each part numbers its
words and terms its own way; the sum numbers them as ``pipeline.terms.term_counts`` numbers
the terms of all papers together (words sorted, each n-gram block in packed-key order), so
the keywords equal those of one count over every paper (a test compares them).

The label stage uses it above ``label.fit_sample`` papers: topic names, the tree and the name
audit come from a sample of each topic (``pipeline.label.sample``), the keywords from the
summed counts of all papers. The feed's label state (``pipeline.feed.label_update``) holds
the same sums per stable topic and ranks its keywords with :func:`class_keywords`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from pipeline.config import LabelConfig
from pipeline.label.keywords import (
    best_terms,
    keyword_min_papers,
    keyword_min_share,
    rare_in_topic_dropped,
    stop_words,
    without_rare_terms,
)
from pipeline.memo import csr_fields, csr_from, words_from_array, words_to_array
from pipeline.terms import (
    TermCounts,
    class_tfidf,
    packed_ngrams,
    term_counts,
    term_names,
    tokenize_texts,
    unpacked_ngrams,
)

if TYPE_CHECKING:
    from pipeline.engine import Engine

# Papers per part counted on one worker: tokens and the document-term matrix of 50,000
# abstracts take about 0.3 GB there, and 1M papers make 20 parts.
PART_PAPERS = 50_000
# Texts tokenised and counted at once within a part: a part of 50,000 in blocks of 10,000 held 0.21 GB
# above the worker's start instead of 0.97 GB, for 11.1 CPU s instead of 12.5 (the same sums).
COUNT_BLOCK = 10_000
# Values shifted per step when merging sorted arrays (bounds the temporary index array: 32 MB).
_CHUNK = 1 << 22
# Seconds one part may take on a worker before the run stops with an error (a part is ~70 s).
PART_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class ClassCounts:
    """Per class (topic), the summed term counts of its papers.

    classes: sorted class ids (int64, -1 first when there are outliers); sizes: papers per
    class; counts: csr (n_classes, n_terms) int64, summed term counts; holding: csr of the same
    entries, how many of the class's papers hold the term; vocabulary and ngrams: the terms,
    numbered as in ``pipeline.terms.TermCounts`` (vocabulary: the words the terms use, sorted).
    """

    classes: np.ndarray
    sizes: np.ndarray
    counts: sparse.csr_matrix
    holding: sparse.csr_matrix
    vocabulary: np.ndarray
    ngrams: tuple[np.ndarray, ...]

    def names(self, term_ids: Sequence[int]) -> list[str]:
        """Each term as its words joined by spaces."""
        return term_names(self.vocabulary, self.ngrams, term_ids)


def class_sums(
    matrix: sparse.csr_matrix, topics: np.ndarray, classes: np.ndarray | None = None
) -> tuple[np.ndarray, sparse.csr_matrix, sparse.csr_matrix]:
    """The classes; per class the summed rows of ``matrix`` and how many rows hold each term.

    ``classes``: the classes counted (sorted; each of ``topics`` must be one), else those of ``topics``.
    """
    classes = np.unique(topics) if classes is None else np.asarray(classes)
    row = np.searchsorted(classes, topics)
    if len(topics) and ((row >= len(classes)).any() or (classes[np.minimum(row, len(classes) - 1)] != topics).any()):
        raise ValueError("a paper's topic is not among the classes counted")
    matrix = sparse.csr_matrix(matrix)
    # Each stored entry is one paper holding the term: its count adds to ``counts``, 1 to ``holding``.
    # Sums by a product with the papers' class membership (integer ones: no float copy of the counts).
    membership = sparse.csr_matrix(
        (np.ones(len(topics), dtype=matrix.dtype), (row, np.arange(len(topics)))), shape=(len(classes), matrix.shape[0])
    )
    present = sparse.csr_matrix((np.ones_like(matrix.data), matrix.indices, matrix.indptr), shape=matrix.shape)
    counts, holding = membership @ matrix, membership @ present
    for summed in (counts, holding):
        summed.sort_indices()
    return classes, counts.astype(np.int32), holding.astype(np.int32)


ClassSums = tuple[np.ndarray, sparse.csr_matrix, sparse.csr_matrix]  # what class_sums returns


class ClassSumsArrays:
    """:func:`class_sums`' classes, counts and holding as arrays (``pipeline.memo`` codec; one index for both).

    Decoding refuses arrays that do not make such sums (rows per class, one entry pattern).
    """

    def encode(self, value: ClassSums) -> dict[str, np.ndarray]:
        classes, counts, holding = value
        return {"classes": classes, **csr_fields(counts), "holding": holding.data}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> ClassSums:
        counts = csr_from(arrays)
        if counts.shape[0] != len(arrays["classes"]) or len(arrays["holding"]) != len(counts.data):
            raise ValueError("class sums whose rows or entries do not match their classes")
        holding = sparse.csr_matrix((arrays["holding"], counts.indices, counts.indptr), shape=counts.shape)
        return arrays["classes"], counts, holding


def class_counts_of(counts: TermCounts, topics: np.ndarray, classes: np.ndarray) -> ClassCounts:
    """The class sums of a document-term matrix, with only the words its terms use in the vocabulary."""
    classes, class_counts, holding = class_sums(counts.matrix, topics, classes)
    used = np.unique(np.concatenate([block.ravel() for block in counts.ngrams])) if counts.ngrams else np.zeros(0)
    used = used.astype(np.int64)
    ngrams = tuple(np.searchsorted(used, block).astype(np.int32).reshape(block.shape) for block in counts.ngrams)
    sizes = np.bincount(np.searchsorted(classes, topics), minlength=len(classes)).astype(np.int64)
    return ClassCounts(
        classes, sizes, class_counts.astype(np.int64), holding.astype(np.int64), counts.vocabulary[used], ngrams
    )


def count_part(
    part: tuple[list[str], np.ndarray],
    *,
    classes: np.ndarray,
    stop_words: list[str],
    ngram_max: int,
    block: int = COUNT_BLOCK,
) -> ClassCounts:
    """The class sums of one part's texts and topics (on a worker): tokenised and counted there, ``block`` at a time.

    Each block's tokens and document-term matrix are let go once its sums are taken, and the
    blocks' sums are added up (:func:`summed`): the same sums as one count of the part.
    """
    from pipeline.parallel import return_freed_memory

    texts, topics = part
    counts = summed([
        class_counts_of(term_counts(tokenize_texts(texts[start : start + block]), stop_words, ngram_max),
                        topics[start : start + block], classes)
        for start in range(0, max(len(texts), 1), block)
    ])  # fmt: skip
    # The part's tokens and matrix are freed by now: handed back to the system, so that a worker counting
    # part after part does not keep its high-water mark (1.1-2.6 GB each at 1M papers for ~0.3 GB in use).
    return_freed_memory()
    return counts


def summed(parts: Sequence[ClassCounts]) -> ClassCounts:
    """The sum of class counts over the same classes, terms numbered as one count over all their papers gives.

    The parts are added one at a time into a running total (:func:`_added`): the driver holds
    the total, the part and the merged total, never a sort of every entry at once.
    """
    if not parts:
        raise ValueError("no class counts to sum")
    classes = parts[0].classes
    if any(not np.array_equal(part.classes, classes) for part in parts):
        raise ValueError("class counts of different classes cannot be summed")
    return functools.reduce(_added, parts)


def _added(total: ClassCounts, part: ClassCounts) -> ClassCounts:
    """Two class counts of the same classes added, their words and terms merged in order.

    Each side's words are sorted and its terms are in packed-key order, so each side's numbers
    map into the merged numbers in increasing order: each side's (class, term) entries stay
    sorted there, and merging takes a binary search of the part's entries in the total's (no sort).
    """
    for side in (total, part):
        if not (np.array_equal(side.counts.indptr, side.holding.indptr)
                and np.array_equal(side.counts.indices, side.holding.indices)):  # fmt: skip
            raise ValueError("class counts whose counts and holding differ in their entries")
        if not side.counts.has_sorted_indices:
            raise ValueError("class counts whose entries are not sorted")
    words_of_total, words_of_part, new_words = _merged(total.vocabulary, part.vocabulary)
    words = _merged_values(total.vocabulary, part.vocabulary, words_of_total, words_of_part, new_words)
    base = max(len(words), 1)
    n_blocks = len(total.ngrams)
    if len(part.ngrams) != n_blocks:
        raise ValueError("class counts of different n-gram lengths cannot be summed")
    if base**n_blocks >= 2**62:
        raise ValueError(f"a vocabulary of {base} words is too large for {n_blocks}-grams")
    blocks, columns_of_total, columns_of_part, start = [], [], [], 0
    for n in range(n_blocks):
        total_keys = packed_ngrams(words_of_total[total.ngrams[n]], base)
        part_keys = packed_ngrams(words_of_part[part.ngrams[n]], base)
        where = _merged(total_keys, part_keys)
        keys = _merged_values(total_keys, part_keys, *where)
        blocks.append(unpacked_ngrams(keys, n + 1, base))
        columns_of_total.append(start + where[0])
        columns_of_part.append(start + where[1])
        start += len(keys)
    if start >= 2**31:
        raise ValueError(f"{start} terms are too many to number in int32")
    empty = np.zeros(0, dtype=np.int32)
    total_columns = np.concatenate([empty, *columns_of_total]).astype(np.int32)[total.counts.indices]
    part_columns = np.concatenate([empty, *columns_of_part]).astype(np.int32)[part.counts.indices]
    n_classes = len(total.classes)
    # Entries as sorted (class, term) keys; what each side holds of them is all the merge keeps (~50 bytes an entry).
    where_total, where_part, new = _merged(_entry_keys(total.counts.indptr, total_columns, start),
                                           _entry_keys(part.counts.indptr, part_columns, start))  # fmt: skip
    size = len(where_total) + len(new)
    indices = np.empty(size, dtype=np.int32)
    indices[where_total] = total_columns
    indices[where_part] = part_columns
    del total_columns, part_columns
    part_rows = np.repeat(np.arange(n_classes, dtype=np.int64), np.diff(part.counts.indptr))
    indptr = np.zeros(n_classes + 1, dtype=np.int64)
    np.cumsum(np.diff(total.counts.indptr) + np.bincount(part_rows[new], minlength=n_classes), out=indptr[1:])
    matrices = []
    for total_values, part_values in ((total.counts.data, part.counts.data), (total.holding.data, part.holding.data)):
        values = np.zeros(size, dtype=np.int64)
        values[where_total] = total_values
        values[where_part] += part_values
        matrices.append(sparse.csr_matrix((values, indices, indptr), shape=(n_classes, start)))
    sizes = (total.sizes + part.sizes).astype(np.int64)
    return ClassCounts(total.classes, sizes, matrices[0], matrices[1], words, tuple(blocks))


def _merged(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each value of two sorted arrays of distinct values sits in their sorted union.

    Returns the union's index of each of ``first``, of each of ``second``, and the indices of
    ``second`` whose value ``first`` lacks. One binary search of ``second`` in ``first``, no sort.
    """
    position = np.searchsorted(first, second)
    found = position < len(first)
    found[found] = first[position[found]] == second[found]
    new = np.flatnonzero(~found)
    # A value of ``second`` not in ``first`` goes before first[position]: each of first's moves on by those before it.
    where_first = np.bincount(position[new], minlength=len(first) + 1)[: len(first)]
    np.cumsum(where_first, out=where_first)
    for begin in range(0, len(first), _CHUNK):  # += arange(len(first)), without a second array that long
        where_first[begin : begin + _CHUNK] += np.arange(begin, min(begin + _CHUNK, len(first)))
    where_second = np.empty(len(second), dtype=np.int64)
    where_second[found] = where_first[position[found]]
    where_second[new] = position[new] + np.arange(len(new))
    return where_first, where_second, new


def _entry_keys(indptr: np.ndarray, columns: np.ndarray, n_columns: int) -> np.ndarray:
    """Each entry of a csr matrix (its row pointers, its entries' columns) as row * n_columns + column."""
    keys = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64) * n_columns, np.diff(indptr))
    keys += columns
    return keys


def _merged_values(
    first: np.ndarray, second: np.ndarray, where_first: np.ndarray, where_second: np.ndarray, new: np.ndarray
) -> np.ndarray:
    """The sorted union of ``first`` and ``second`` from where :func:`_merged` places them."""
    union = np.empty(len(first) + len(new), dtype=np.result_type(first, second))
    union[where_first] = first
    union[where_second[new]] = second[new]
    return union


def counted_in_parts(
    texts: Sequence[str],
    topics: np.ndarray,
    config: LabelConfig,
    engine: Engine,
    part_papers: int = PART_PAPERS,
) -> tuple[ClassCounts, int]:
    """The class sums of all ``texts`` (one topic each), counted in parts on ``engine``'s workers.

    One part per worker is counted at a time, each worker's next part started as soon as the
    driver takes the part it counted (``parallel.computed_in_order``), and each returned part is
    added into the running total (:func:`summed`) while the workers count the next ones: the
    driver holds the total and the parts in flight, never every part, and the workers do not
    wait for its additions. The engine is released (``Engine.release``) once the last part is in.
    Returns the sums and the number of parts.
    """
    from pipeline.parallel import computed_in_order

    if len(texts) == 0 or len(texts) != len(topics):
        raise ValueError(f"{len(texts)} texts and {len(topics)} topics: no papers to count, or not one topic each")
    topics = np.asarray(topics, dtype=np.int64)
    classes = np.unique(topics)
    n_workers = engine.n_workers  # starts the engine: its parts can all start at once
    n_parts = max(1, -(-len(texts) // part_papers), n_workers)
    bounds = np.linspace(0, len(texts), n_parts + 1).round().astype(np.int64)
    spans = [(int(start), int(end)) for start, end in itertools.pairwise(bounds) if end > start]
    common = {"classes": classes, "stop_words": stop_words(config), "ngram_max": config.ngram_max}

    def count(part: tuple[list[str], np.ndarray]) -> ClassCounts:
        return engine.map(count_part, [part], timeout_s=PART_TIMEOUT_S, common=common)[0]

    # Each part's texts are taken from ``texts`` only when its turn to start comes.
    parts = ((list(texts[start:end]), topics[start:end]) for start, end in spans)
    total: ClassCounts | None = None
    results = computed_in_order(count, parts, ahead=n_workers, first_alone=False)
    for taken, part in enumerate(results, start=1):
        if taken == len(spans):  # every part is in: the workers (~1 GB each at 1M) go before the last addition
            engine.release()
        total = part if total is None else summed([total, part])
        del part
    if total is None:  # not reached: texts is not empty, so there is a span
        raise ValueError("no parts were counted")
    return total, len(spans)


def class_keywords(counts: ClassCounts, config: LabelConfig) -> dict[int, list[tuple[str, float]]]:
    """Each class's c-TF-IDF keywords: what ``keywords.ctfidf_keywords`` gives over the same papers."""
    # A copy: the weights share the count matrix's index arrays, and dropping rare terms edits them in place.
    weights = class_tfidf(counts.counts.copy(), config.reduce_frequent_words)
    min_share = keyword_min_share(config)
    if min_share > 0:
        weights = rare_in_topic_dropped(weights, counts.holding.copy(), counts.sizes, min_share)
    papers_with = np.asarray(counts.holding.sum(axis=0)).ravel()
    without_rare_terms(weights, papers_with, keyword_min_papers(config, int(counts.sizes.sum())))
    keywords = {}
    for row, topic in enumerate(counts.classes.tolist()):
        values = weights.getrow(row)
        term_ids, scores = best_terms(values.data, values.indices, config.n_keywords)
        keywords[int(topic)] = list(zip(counts.names(term_ids.tolist()), scores.tolist(), strict=True))
    return keywords


@dataclass(frozen=True)
class ClassKeywords:
    """The classes counted and each one's c-TF-IDF keywords (:func:`class_keywords`): what naming a sample needs.

    The summed counts themselves (tens of millions of topic x term entries at a million papers) can
    go once these are taken from them, before the sample's own words are read and named.
    """

    classes: np.ndarray
    keywords: dict[int, list[tuple[str, float]]]


def keywords_of(counts: ClassCounts, config: LabelConfig) -> ClassKeywords:
    """:func:`class_keywords` of ``counts`` with the classes they were counted for."""
    return ClassKeywords(counts.classes, class_keywords(counts, config))


class ClassCountsArrays:
    """:class:`ClassCounts` as arrays (``pipeline.memo`` codec)."""

    def encode(self, value: ClassCounts) -> dict[str, np.ndarray]:
        return {
            "classes": value.classes,
            "sizes": value.sizes,
            **{f"counts_{name}": array for name, array in csr_fields(value.counts).items()},
            **{f"holding_{name}": array for name, array in csr_fields(value.holding).items()},
            "vocabulary": words_to_array(value.vocabulary),
            "ngram_max": np.array(len(value.ngrams)),
            **{f"ngrams_{n}": block for n, block in enumerate(value.ngrams, start=1)},
        }

    def decode(self, arrays: Mapping[str, np.ndarray]) -> ClassCounts:
        def matrix(prefix: str) -> sparse.csr_matrix:
            return csr_from({name: arrays[f"{prefix}_{name}"] for name in ("shape", "data", "indices", "indptr")})

        ngrams = tuple(arrays[f"ngrams_{n}"] for n in range(1, int(arrays["ngram_max"]) + 1))
        vocabulary = words_from_array(arrays["vocabulary"]) if len(arrays["vocabulary"]) else np.zeros(0, object)
        return ClassCounts(arrays["classes"], arrays["sizes"], matrix("counts"), matrix("holding"), vocabulary, ngrams)
