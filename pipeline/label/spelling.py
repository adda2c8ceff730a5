"""A phrase as the texts write it: the most used form, each word in the case the texts give it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import numpy as np

from pipeline.label.phrases import PhraseIndex, TermUses, term_rows
from pipeline.terms import rows_found


def spell(index: PhraseIndex, terms: Collection[int], sample: np.ndarray | None = None) -> dict[int, str]:
    """Each term as the texts write it most often (in the papers ``sample``, default all).

    The words of the most used form are kept, and each word's case is the texts' own: an acronym or
    a mixed-case word ("LLMs", "3D", "SWE-bench") when the texts write it so at least as often as in
    lowercase; a capitalised word ("Bayesian") only when the texts never write it in lowercase and
    capitalise it inside an abstract's sentence, not only in titles or after a full stop.
    """
    if not terms:
        return {}
    if sample is None:  # each term's uses over all papers, worked out once per index (and kept between runs)
        known = index.spellings
        missing = [term for term in dict.fromkeys(terms) if term not in known]
        if missing:
            known.update(term_uses(index, index.text.words, missing))
        uses = {term: known[term] for term in terms}
    else:
        text = index.text
        uses = term_uses(index, np.where(np.isin(text.paper_of, sample), text.words, -1), list(dict.fromkeys(terms)))
    forms = {term: uses[term][0] for term in terms}
    evidence: Counter[tuple[int, bool]] = Counter()  # (surface, capitalised inside a sentence) -> uses
    for term in forms:
        evidence.update(uses[term][1])
    return chosen_spellings(index, forms, evidence)


def term_uses(index: PhraseIndex, word: np.ndarray, terms: list[int]) -> dict[int, TermUses]:
    """Per term, its written forms (surface ids -> uses) and its words' evidence ((surface, inside) -> uses).

    ``word``: the texts' word keys, -1 outside the papers looked at. Both add up over terms: a
    set of terms' evidence is the sum of theirs, so each term's is worked out once.
    """
    text = index.text
    found: dict[int, TermUses] = {term: (Counter(), Counter()) for term in terms}
    by_length: dict[int, list[int]] = {}
    for term in terms:
        by_length.setdefault(len(index.term_keys(term)), []).append(term)
    for n, wanted in by_length.items():
        at, term_of = _occurrences(index, word, n, wanted)
        surfaces = np.stack([text.tokens[at + offset] for offset in range(n)], axis=1).astype(np.int64)
        inside = np.stack([~text.in_title[at + o] & ~text.opens[at + o] for o in range(n)], axis=1)
        # Each (term, written form) once, with its uses: a Python step per form, not per use.
        rows, uses = _distinct_rows(np.column_stack([term_of, surfaces]))
        for row, count in zip(rows.tolist(), uses.tolist(), strict=True):
            found[row[0]][0][tuple(row[1:])] += count
        pairs = (surfaces * 2 + inside).reshape(-1)
        rows, uses = _distinct_rows(np.column_stack([np.repeat(term_of, n), pairs]))
        for (term, pair), count in zip(rows.tolist(), uses.tolist(), strict=True):
            found[term][1][(pair // 2, pair % 2 == 1)] += count
    return found


def chosen_spellings(
    index: PhraseIndex, forms: dict[int, Counter[tuple[int, ...]]], evidence: Counter[tuple[int, bool]]
) -> dict[int, str]:
    """Each term's most used written form (`forms`: surfaces -> uses), each word in the case `evidence` gives it."""
    text = index.text
    case_of = _word_cases(evidence, text.surfaces)
    spelled = {}
    for term, counter in forms.items():
        if not counter:
            spelled[term] = index.key_text(term)
            continue
        lower: Counter[tuple[str, ...]] = Counter()
        for form, n in counter.items():
            lower[tuple(word.lower() for word in text.surfaces[list(form)].tolist())] += n
        best = max(lower, key=lambda f: (lower[f], f))
        spelled[term] = " ".join(case_of.get(w, w) for w in best)
    return spelled


def _occurrences(index: PhraseIndex, word: np.ndarray, n: int, wanted: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Where the texts write the ``n``-word terms ``wanted``, and which term, in text order.

    Only the places that start with a term's first word are looked at (found in the texts' word
    order, ``PhraseTokens.positions``, not by a pass over every token); their ``n`` words are
    matched exactly (packed keys that never wrap) against the terms' words. ``word``: the texts'
    word keys, -1 where a sentence piece ends or outside the papers looked at.
    """
    count, n_keys = max(len(word) - n + 1, 0), max(len(index.keys), 1)
    terms = np.asarray(wanted, dtype=np.int64)
    words = np.stack([index.term_keys(term) for term in wanted]).astype(np.int64)
    starts = [index.text.positions(key) for key in np.unique(words[:, 0]).tolist()]
    at = np.sort(np.concatenate(starts)) if starts else np.zeros(0, dtype=np.int64)
    at = at[at < count]
    ok = np.ones(len(at), dtype=bool)
    for offset in range(n):
        ok &= word[at + offset] >= 0
    at = at[ok]
    found = rows_found(term_rows(words, n_keys), term_rows(np.stack([word[at + o] for o in range(n)], axis=1), n_keys))
    return at[found >= 0], terms[found[found >= 0]]


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of an int64 (m, k) array in lexicographic order, and how often each occurs.

    As ``np.unique(rows, axis=0, return_counts=True)``, but each column is ranked and the ranks
    joined into one int64 key when their product fits (one 1-D sort instead of a sort of rows).
    """
    columns = [np.unique(column, return_inverse=True) for column in rows.T]
    if rows.shape[0] == 0 or np.prod([float(len(values)) for values, _ in columns]) >= 2.0**62:
        return np.unique(rows, axis=0, return_counts=True)
    key = np.zeros(rows.shape[0], dtype=np.int64)
    for values, ranks in columns:
        key = key * len(values) + ranks.reshape(-1)
    keys, counts = np.unique(key, return_counts=True)
    found = np.empty((len(keys), rows.shape[1]), dtype=rows.dtype)
    for at in range(rows.shape[1] - 1, -1, -1):
        values = columns[at][0]
        keys, rank = np.divmod(keys, len(values))
        found[:, at] = values[rank]
    return found, counts


def _word_cases(evidence: Counter[tuple[int, bool]], surfaces: np.ndarray) -> dict[str, str]:
    """Per lowercase word, the case the texts give it (see :func:`spell`)."""
    seen: dict[str, Counter[str]] = {}
    for (surface, inside), n in evidence.items():
        word = str(surfaces[surface])
        if _capitalised(word) and not inside:
            continue  # a title's or a sentence's first capital says nothing of the word
        seen.setdefault(word.lower(), Counter())[word] += n
    cases = {}
    for lower, counter in seen.items():
        cased = Counter({w: n for w, n in counter.items() if w != lower and not _capitalised(w)})
        capitalised = Counter({w: n for w, n in counter.items() if _capitalised(w)})
        if cased and cased.total() >= counter.get(lower, 0):
            cases[lower] = max(cased, key=lambda w: (cased[w], w))
        elif counter.get(lower, 0) == 0 and capitalised:
            cases[lower] = max(capitalised, key=lambda w: (capitalised[w], w))
        else:
            cases[lower] = lower
    return cases


def _capitalised(word: str) -> bool:
    """Title case, hyphenated parts too ("Bayesian", "Super-Resolution"), not an acronym ("LLMs", "3D")."""
    return word != word.lower() and all(part == part.capitalize() for part in word.split("-"))
