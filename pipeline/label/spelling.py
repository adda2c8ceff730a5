"""A phrase as the texts write it: the most used form, each word in the case the texts give it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import numpy as np

from pipeline.label.phrases import PhraseIndex, _hash


def spell(index: PhraseIndex, terms: Collection[int], sample: np.ndarray | None = None) -> dict[int, str]:
    """Each term as the texts write it most often (in the papers ``sample``, default all).

    The words of the most used form are kept, and each word's case is the texts' own: an acronym or
    a mixed-case word ("LLMs", "3D", "SWE-bench") when the texts write it so at least as often as in
    lowercase; a capitalised word ("Bayesian") only when the texts never write it in lowercase and
    capitalise it inside an abstract's sentence, not only in titles or after a full stop.
    """
    forms: dict[int, Counter[tuple[int, ...]]] = {term: Counter() for term in terms}
    if not forms:
        return {}
    n_keys, text = max(len(index.keys), 1), index.text
    word = text.words if sample is None else np.where(np.isin(text.paper_of, sample), text.words, -1)
    by_length: dict[int, dict[int, int]] = {}
    for term in forms:
        keys = index.term_keys(term).astype(np.int64)
        by_length.setdefault(len(keys), {})[int(_hash(keys[None, :], n_keys)[0])] = term
    evidence: Counter[tuple[int, bool]] = Counter()  # (surface, capitalised inside a sentence) -> uses
    for n, wanted in by_length.items():
        count = len(word) - n + 1
        hashed, ok = np.zeros(max(count, 0), dtype=np.int64), np.ones(max(count, 0), dtype=bool)
        for offset in range(n):
            ids = word[offset : offset + count]
            ok &= ids >= 0
            hashed = hashed * n_keys + np.maximum(ids, 0)
        at = np.flatnonzero(ok & np.isin(hashed, np.fromiter(wanted, dtype=np.int64)))
        surfaces = np.stack([text.tokens[at + offset] for offset in range(n)], axis=1)
        inside = np.stack([~text.in_title[at + o] & ~text.opens[at + o] for o in range(n)], axis=1)
        for key, row in zip(hashed[at].tolist(), surfaces.tolist(), strict=True):
            forms[wanted[key]][tuple(row)] += 1
        evidence.update(zip(surfaces.ravel().tolist(), inside.ravel().tolist(), strict=True))
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
