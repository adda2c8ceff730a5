"""The phrases the authors wrote: candidate topic names, counted per paper, scored per topic.

A candidate is a run of 1 to 4 words inside one sentence piece of a title or an abstract
(pieces end at punctuation, digits-only words and LaTeX commands), that neither starts nor
ends with a stop word or abstract boilerplate ("models" may end one: "language models"), with
at most one stop word inside ("chain of thought"). Words keep their hyphens and digits
("Chain-of-Thought", "3D", "GPT-4"); case and a plural "s" are folded for counting ("LLM" and
"LLMs" are one phrase), and a phrase is spelled back as the texts spell it most often. So a
name is always a phrase some paper wrote, in that order.

A phrase is scored for a topic by its **coverage** (the share of the topic's papers whose title
or abstract uses it), its **lift** (how many times more often the topic's papers use it than
the rest of the pile) and its use in titles (the authors' own summaries):
``score = coverage * (1 + title coverage) * log(min(lift, LIFT_CAP))``: past ``LIFT_CAP`` a
phrase tells its topic apart well enough, and only covering more papers makes it a better
name. Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.factorize import FACTORIZE_CHUNK_TEXTS, ChunkedFactorizer
from pipeline.memo import csr_fields, csr_from
from pipeline.terms import ENGLISH_STOP_WORDS, packed_rows, rows_found, unique_ngrams

MAX_WORDS = 4
# Lift past which a phrase scores no higher for telling its topic apart (see the module docstring).
LIFT_CAP = 10.0
# A word (letters, digits, inner hyphens), a LaTeX command or a character that ends a sentence piece.
_PIECES = re.compile(r"[^\W_](?:[\w\-]*[^\W_])?|\\[A-Za-z]+|[.,;:!?()\[\]{}\"“”$|]")
# Words that may end a phrase although they are boilerplate: "large language models".
TAIL_WORDS = frozenset({"model", "models"})
# Words of titles that start or end no phrase, beside the stop words and boilerplate: "Does",
# "Towards", "Rethinking" (scikit-learn's stop words lack "does"; counting folds it to "doe").
EDGE_WORDS = frozenset(
    """
    doe does doing did can help helps truly toward towards rethinking revisiting beyond unlocking unleashing
    boosting enhancing improving making make makes generate generates generating lens
    """.split()
)


def fold(word: str) -> str:
    """The counting key of a word: lowercase, a plural "s" dropped ("LLMs" -> "llm", "studies" -> "study")."""
    key = word.lower()
    if key.endswith("ics"):  # "dynamics", "robotics": no plural of an adjective
        return key
    if len(key) > 4 and key.endswith("ies"):
        return key[:-3] + "y"
    if len(key) > 3 and key.endswith("s") and not key.endswith(("ss", "us", "is")):
        return key[:-1]
    return key


@dataclass(frozen=True)
class PhraseTokens:
    """The papers' words as the phrase index reads them.

    surfaces: object ndarray of the words as written; key_of: int32 (n_surfaces,) their counting
    keys in ``keys``; tokens: int32 (n_tokens,) surface ids of all texts, -1 where a sentence piece
    ends; words: int64 (n_tokens,) key ids, -1 there too; paper_of: int32 (n_tokens,);
    in_title: bool (n_tokens,); opens: bool (n_tokens,), whether a word opens a sentence piece.
    """

    surfaces: np.ndarray
    key_of: np.ndarray
    keys: np.ndarray
    tokens: np.ndarray
    words: np.ndarray
    paper_of: np.ndarray
    in_title: np.ndarray
    opens: np.ndarray
    n_papers: int

    @functools.cached_property
    def key_id(self) -> dict[str, int]:
        return {key: index for index, key in enumerate(self.keys.tolist())}

    @functools.cached_property
    def by_word(self) -> np.ndarray:
        """Every token's position, stably sorted by word key (-1 first), int64 (n_tokens,).

        Kept with the phrase index between runs (:class:`PhraseIndexArrays`): sorting 15M tokens
        at 75k papers was a tenth of a naming rerun.
        """
        # A stable sort by word key as a counting sort (scipy's COO to CSR keeps each row's entries
        # in the given column order): linear, where numpy's stable argsort of int64 is a merge sort.
        n = len(self.words)
        by_key = sparse.coo_matrix(
            (np.ones(n, dtype=np.int8), (self.words + 1, np.arange(n, dtype=np.int64))),
            shape=(int(self.words.max(initial=-1)) + 2, n),
        ).tocsr()
        return by_key.indices.astype(np.int64)

    @functools.cached_property
    def _by_word(self) -> tuple[np.ndarray, np.ndarray]:
        order = self.by_word
        # The sorted keys, from each key's count (a gather of 15M int64 costs more).
        counts = np.bincount(self.words + 1) if len(self.words) else np.zeros(0, dtype=np.int64)
        return order, np.repeat(np.arange(-1, len(counts) - 1, dtype=np.int64), counts)

    @functools.cached_property
    def fragments(self) -> dict[tuple[str, ...], bool]:
        """``audit.is_fragment``'s answers so far, by the phrase's folded words (filled as it is asked)."""
        return {}

    @functools.cached_property
    def surface_uses(self) -> np.ndarray:
        """How often each surface is written, int64 (n_surfaces,)."""
        return np.bincount(self.tokens[self.tokens >= 0], minlength=len(self.surfaces))

    def positions(self, key: int) -> np.ndarray:
        """Where the word ``key`` occurs, in text order."""
        order, sorted_words = self._by_word
        return order[np.searchsorted(sorted_words, key) : np.searchsorted(sorted_words, key, side="right")]


def phrase_tokens(titles: Sequence[str], abstracts: Sequence[str]) -> PhraseTokens:
    """The words of each paper's title, then its abstract, each field ending a sentence piece."""
    if len(titles) != len(abstracts):
        raise ValueError(f"{len(titles)} titles but {len(abstracts)} abstracts")
    ends = np.zeros(len(titles), dtype=np.int64)
    title_ends = np.zeros(len(titles), dtype=np.int64)
    factorizer = ChunkedFactorizer()  # the words as Python strings a chunk of papers at a time
    done = 0
    for start in range(0, len(titles), FACTORIZE_CHUNK_TEXTS):
        flat: list[str] = []
        for index in range(start, min(start + FACTORIZE_CHUNK_TEXTS, len(titles))):
            flat += _PIECES.findall(titles[index])
            flat.append(".")
            title_ends[index] = done + len(flat)
            flat += _PIECES.findall(abstracts[index])
            flat.append(".")
            ends[index] = done + len(flat)
        done += len(flat)
        factorizer.add(flat)
    codes, uniques = factorizer.result()
    is_word = np.array([len(w) > 1 and w[0] != "\\" and not w.isdigit() and w[0].isalnum() for w in uniques], bool)
    key_codes, keys = pd.factorize(np.array([fold(w) for w in uniques], dtype=object))
    tokens = np.where(is_word[codes], codes, -1).astype(np.int32) if len(codes) else np.zeros(0, np.int32)
    lengths = np.diff(np.concatenate([[0], ends]))
    paper_of = np.repeat(np.arange(len(titles), dtype=np.int32), lengths)
    in_title = np.arange(len(tokens)) < np.repeat(title_ends, lengths)
    words = np.where(tokens >= 0, key_codes[np.maximum(tokens, 0)], -1).astype(np.int64) if len(tokens) else tokens
    is_text = np.array([w[0].isalnum() for w in uniques], dtype=bool)[codes] if len(codes) else np.zeros(0, bool)
    opens = np.concatenate([[True], ~is_text[:-1]]) if len(codes) else np.zeros(0, bool)
    return PhraseTokens(
        uniques, key_codes.astype(np.int32), np.asarray(keys, dtype=object), tokens, words.astype(np.int64),
        paper_of, in_title, opens, len(titles),
    )  # fmt: skip


# A term's written forms (surface ids -> uses) and its words' evidence ((surface, inside a sentence) -> uses).
TermUses = tuple[Counter[tuple[int, ...]], Counter[tuple[int, bool]]]


@dataclass(frozen=True)
class PhraseIndex:
    """Every candidate phrase of a pile of papers and which papers write it.

    ngrams[n - 1]: int32 (n_terms_n, n) key ids of ``text.keys``, terms numbered 1-word first;
    papers: csr (n_papers, n_terms) of 1 where the title or abstract writes the term; titles:
    the same for titles only.
    """

    text: PhraseTokens
    ngrams: tuple[np.ndarray, ...]
    papers: sparse.csr_matrix
    titles: sparse.csr_matrix

    @property
    def keys(self) -> np.ndarray:
        return self.text.keys

    @functools.cached_property
    def spellings(self) -> dict[int, TermUses]:
        """``spelling.term_uses`` of the terms spelled so far (filled as they are asked, kept between runs)."""
        return {}

    @functools.cached_property
    def _starts(self) -> np.ndarray:
        return np.cumsum([0] + [len(block) for block in self.ngrams])

    def term_keys(self, term: int) -> np.ndarray:
        block = int(np.searchsorted(self._starts, term, side="right")) - 1
        return self.ngrams[block][term - self._starts[block]]

    def key_text(self, term: int) -> str:
        return " ".join(self.keys[self.term_keys(term)].tolist())


def build_phrase_index(text: PhraseTokens, stop_words: Collection[str], min_papers: int = 2) -> PhraseIndex:
    """The candidate phrases of the papers (see the module docstring) used by at least ``min_papers`` papers."""
    keys, word, paper_of, in_title = text.keys, text.words, text.paper_of, text.in_title
    stop = set(stop_words) | set(ENGLISH_STOP_WORDS) | EDGE_WORDS
    key_stop = np.array([k in stop or f"{k}s" in stop for k in keys], dtype=bool)
    key_english = np.array([k in ENGLISH_STOP_WORDS for k in keys], dtype=bool)
    key_tail = np.array([k in TAIL_WORDS for k in keys], dtype=bool)
    n_keys = max(len(keys), 1)
    blocks, rows, columns, title_rows, title_columns, n_terms = [], [], [], [], [], 0
    for n in range(1, MAX_WORDS + 1):
        count = len(word) - n + 1
        if count <= 0:
            blocks.append(np.zeros((0, n), dtype=np.int32))
            continue
        ok = np.ones(count, dtype=bool)
        inner_stops = np.zeros(count, dtype=np.int64)
        for offset in range(n):
            ids = word[offset : offset + count]
            ok &= ids >= 0
            if 0 < offset < n - 1:
                inner_stops += key_english[np.maximum(ids, 0)]
        first, last = np.maximum(word[:count], 0), np.maximum(word[n - 1 :], 0)
        ok &= ~key_stop[first] & (~key_stop[last] | (key_tail[last] & (n > 1))) & (inner_stops <= 1)
        at = np.flatnonzero(ok)
        # Exact keys (several int64 columns where n words overflow one): a wrapped key's words are not the term's.
        block, term = unique_ngrams(packed_rows([word[at + offset] for offset in range(n)], n_keys), n, n_keys)
        blocks.append(block)
        rows.append(paper_of[at])
        columns.append(term + n_terms)
        title_rows.append(paper_of[at[in_title[at]]])
        title_columns.append(term[in_title[at]] + n_terms)
        n_terms += len(block)
    shape = (text.n_papers, n_terms)
    none = np.zeros(0, dtype=np.int64)
    papers = _binary(np.concatenate(rows or [none]), np.concatenate(columns or [none]), shape)
    titled = _binary(np.concatenate(title_rows or [none]), np.concatenate(title_columns or [none]), shape)
    keep = np.bincount(papers.indices, minlength=n_terms) >= min_papers
    sizes = np.cumsum([0] + [len(b) for b in blocks])
    blocks = [b[keep[sizes[i] : sizes[i + 1]]] for i, b in enumerate(blocks)]
    return PhraseIndex(text, tuple(blocks), papers[:, keep].tocsr(), titled[:, keep].tocsr())


def _binary(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    # int32 coordinates where they fit (the matrix's indices are int32 then anyway): the label stage's peak at
    # 1M papers was here, and a 100k sample's index held 0.38 GB less above its start (and took 2.7 CPU s less).
    small = np.int32 if max(shape) < np.iinfo(np.int32).max else np.int64
    rows, columns = np.asarray(rows, dtype=small), np.asarray(columns, dtype=small)
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, columns)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


@dataclass(frozen=True)
class Ranked:
    """A group of papers' candidate phrases, best first: term ids and their coverage, title coverage, lift, score."""

    terms: np.ndarray
    coverage: np.ndarray
    title_coverage: np.ndarray
    lift: np.ndarray
    score: np.ndarray


def rank_phrases(
    topic_counts: sparse.csr_matrix,
    title_counts: sparse.csr_matrix,
    size: int,
    totals: np.ndarray,
    n_papers: int,
) -> Ranked:
    """Candidates of one group of ``size`` papers, from its (1, n_terms) paper counts and the pile's ``totals``.

    Lift is smoothed by one paper: (k / size) / ((total - k + 1) / (rest + 1)).
    """
    row, title_row = topic_counts.tocsr(), title_counts.tocsr()
    terms, counts = row.indices, row.data.astype(np.float64)
    in_titles = _row_values(title_row, terms) if len(terms) else np.zeros(0)
    rest = n_papers - size
    coverage = counts / max(size, 1)
    lift = coverage / ((totals[terms] - counts + 1) / (rest + 1))
    title_coverage = in_titles / max(size, 1)
    score = coverage * (1 + title_coverage) * np.log(np.clip(lift, 1.0, LIFT_CAP))
    order = best_first(terms, score)
    return Ranked(terms[order], coverage[order], title_coverage[order], lift[order], score[order])


def best_first(terms: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The order of ``np.lexsort((terms, -score))`` for distinct ``terms`` and scores >= 0.

    Most of a large group's phrases score 0 (lift at most 1): they come last in term order, one
    sort of integers, and only the others are sorted by score (a group of most of the pile holds
    millions of phrases, and its ranking was most of naming its tree).
    """
    scored = np.flatnonzero(score > 0)
    unscored = np.flatnonzero(~(score > 0))
    return np.concatenate(
        [scored[np.lexsort((terms[scored], -score[scored]))], unscored[np.argsort(terms[unscored], kind="stable")]]
    ).astype(np.intp)


def _row_values(row: sparse.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """The values of a (1, n) csr matrix at ``columns``, 0 where it holds none (``row[:, columns]`` densified).

    A search in its sorted columns: scipy's column indexing costs a pass over all n columns per call.
    """
    row = row.copy()
    row.sum_duplicates()  # sorted columns, each once
    at = np.minimum(np.searchsorted(row.indices, columns), max(len(row.indices) - 1, 0))
    found = (row.indices[at] == columns) if len(row.indices) else np.zeros(len(columns), dtype=bool)
    return np.where(found, row.data[at] if len(row.data) else 0, 0).astype(row.dtype)


def positions_of(ranked: Ranked, terms: Sequence[int]) -> dict[int, int]:
    """Where each of ``terms`` (a few) is in ``ranked`` (one pass over it, not a dict of all its terms)."""
    wanted = np.unique(np.asarray(list(terms), dtype=np.int64))
    at = np.flatnonzero(np.isin(ranked.terms, wanted))
    return dict(zip(ranked.terms[at].tolist(), at.tolist(), strict=True))


def extensions(index: PhraseIndex) -> tuple[np.ndarray, np.ndarray]:
    """For every term of 2+ words, the term of its first and of its last n-1 words (-1 when not a term)."""
    n_keys = max(len(index.keys), 1)
    sizes = np.cumsum([0] + [len(block) for block in index.ngrams])
    prefix = np.full(sizes[-1], -1, dtype=np.int64)
    suffix = np.full(sizes[-1], -1, dtype=np.int64)
    for n in range(2, len(index.ngrams) + 1):
        block, shorter = index.ngrams[n - 1], index.ngrams[n - 2]
        shorter_keys = term_rows(shorter, n_keys)
        for target, part in ((prefix, block[:, :-1]), (suffix, block[:, 1:])):
            at = rows_found(shorter_keys, term_rows(part, n_keys))
            target[sizes[n - 1] : sizes[n]] = np.where(at >= 0, at + sizes[n - 2], -1)
    return prefix, suffix


def term_rows(block: np.ndarray, base: int) -> np.ndarray:
    """Rows of word keys (int (m, n)) as exact packed keys (:func:`pipeline.terms.packed_rows`)."""
    return packed_rows([block[:, column] for column in range(block.shape[1])], base)


_SEPARATOR = "\x00"  # words never hold a NUL byte


def _strings_to_array(values: np.ndarray) -> np.ndarray:
    return np.frombuffer(_SEPARATOR.join(values.tolist()).encode("utf-8"), dtype=np.uint8)


def _strings_from_array(array: np.ndarray) -> np.ndarray:
    text = array.tobytes().decode("utf-8")
    return np.array(text.split(_SEPARATOR) if text else [], dtype=object)


class PhraseIndexArrays:
    """A phrase index as arrays (``pipeline.memo`` codec): the label stage keeps it between runs."""

    def encode(self, value: PhraseIndex) -> dict[str, np.ndarray]:
        text = value.text
        arrays = {
            "surfaces": _strings_to_array(text.surfaces),
            "keys": _strings_to_array(text.keys),
            **{name: getattr(text, name) for name in ("key_of", "tokens", "words", "paper_of", "in_title", "opens")},
            "by_word": text.by_word,
            "n_papers": np.array(text.n_papers),
            "n_blocks": np.array(len(value.ngrams)),
            **{f"ngrams_{n}": block for n, block in enumerate(value.ngrams)},
        }
        for prefix, matrix in (("papers", value.papers), ("titles", value.titles)):
            arrays |= {f"{prefix}_{name}": array for name, array in csr_fields(matrix).items()}
        return arrays

    def decode(self, arrays: Mapping[str, np.ndarray]) -> PhraseIndex:
        text = PhraseTokens(
            _strings_from_array(arrays["surfaces"]),
            arrays["key_of"],
            _strings_from_array(arrays["keys"]),
            arrays["tokens"],
            arrays["words"],
            arrays["paper_of"],
            arrays["in_title"],
            arrays["opens"],
            int(arrays["n_papers"]),
        )
        order = arrays["by_word"]
        if order.shape != text.words.shape:
            raise ValueError(f"a phrase index of {len(text.words)} tokens but {len(order)} in word order")
        text.__dict__["by_word"] = order  # the cached property, as kept (the file's checksum vouches for it)
        ngrams = tuple(arrays[f"ngrams_{n}"] for n in range(int(arrays["n_blocks"])))
        matrices = [
            csr_from({name: arrays[f"{prefix}_{name}"] for name in ("shape", "data", "indices", "indptr")})
            for prefix in ("papers", "titles")
        ]
        return PhraseIndex(text, ngrams, *matrices)
