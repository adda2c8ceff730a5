"""Topic and group names from the phrases the authors wrote (``pipeline.label.phrases``).

A topic's name is its best phrase (coverage, lift and use in titles; see ``phrases``), grown
into a longer phrase the texts write when that one still covers at least half as many papers
("large language" -> "large language models", "graph" -> "graph neural networks"); a second
phrase is added only when it covers papers the first does not and shares no word with it
(no "Language llms, large language models"). A phrase made only of :data:`GENERIC_WORDS`, or
a single word shaped like an adjective ("visual", "contrastive"), is never a name on its
own, nor is a phrase the pile continues with one same word in most of the papers that write it
(a fragment: "multimodal large" -> "language"). One exception: a topic that no main phrase covers
COVERAGE_FLOOR of may be headed by the generic word covering most of it, followed by a telling
phrase ("Equation, incompressible fluids" for partial differential equations, where "Flow" covers
16%). :class:`PhraseNamer` gives each topic or group
its candidate names, best first; ``pipeline.label.choose`` picks among them so that names tell
the topics apart (no shared head phrase, nearest their own centroid, specific before generic).

**Meaning.** With an embedder (the run's embedding backend), the best-scored main phrases are
also weighed by what they mean: the cosine of the phrase's vector to the topic's centroid (or
the group's), so that a phrase that covers many papers but says little of them ("Detection"
for papers on hate speech) loses to one that says what they are about.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from pipeline.label.names import _abbreviates
from pipeline.label.phrases import PhraseIndex, Ranked, extensions, positions_of, rank_phrases

# A name's phrase must occur at least this many times more often in its topic than in the rest.
MIN_LIFT = 3.0
# A longer phrase replaces a shorter one it extends when it covers more than this share of its papers.
GROW_SHARE = 0.5
# A name's main phrase should cover at least this share of its topic: a main phrase that does is
# chosen over better-scored ones that do not, and a phrase that does is not grown into one that does not.
COVERAGE_FLOOR = 0.2
# A second phrase must name at least this share of the topic's papers that the first does not.
SECOND_GAIN = 0.15
SHORTLIST = 40
# How many of the best-scored main phrases are weighed by their meaning, and how much it weighs:
# a main phrase's order is its score times max(cosine to the centroid, 0) ** MEANING_POWER.
MEANING_SHORTLIST = 10
MEANING_POWER = 0.25
# A phrase the texts continue with one same word in more than this share of its uses is a fragment
# ("multimodal large" -> "language"); in the pile, by the papers that write it and its continuation.
CONTINUED_SHARE = 0.5
# A one-word name is specific to its topic when at least this share of the papers that write it are the
# topic's, and fewer than GENERIC_SPREAD topics have COVERAGE_SPREAD of their papers write it; else it is
# generic in this pile ("Optimization", "Energy"): it heads a name only when nothing specific covers enough.
SPECIFIC_SHARE = 0.5
COVERAGE_SPREAD = 0.2
GENERIC_SPREAD = 3
# A name with two phrases has at most this many words.
MAX_NAME_WORDS = 5
GENERIC_WORDS = frozenset(
    """
    research real world time human humans deep novel approach data learning analysis system application study
    information process performance quality large high low small general various different new user way
    work level effect role case field problem solution design development evaluation training understanding
    generation method technique technology framework tool strategy task type form part use number space source
    region value order term set function property condition result parameter structure state scale size range class
    rate measure degree factor point equation theory efficiency accuracy robustness complexity capability
    ability challenge limitation content simulation test observation estimate experiment measurement dynamics
    algorithm finding
    """.split()
)
# Adjectives that are nouns too, and can name a topic on their own.
_NOUN_ENDINGS_OK = frozenset(
    """
    retrieval signal material logic music traffic potential interval topic proposal removal arrival journal animal
    tutorial manual terminal survival trial portal capital hospital mineral epidemic pandemic clinic arithmetic
    mechanic rival critic metal crystal festival individual principal star radar lidar grammar calendar seminar
    dollar pillar scholar bar car war sugar
    """.split()
)
_ADJECTIVE_ENDINGS = ("al", "ive", "ous", "ic", "ary", "able", "ible", "ful", "less", "ar")
# Adjectives of other shapes; none ends a name ("Random", "Scale-free, complex").
_ADJECTIVES = frozenset(
    """
    complex random linear nonlinear free scale-free robust efficient simple strong weak fast multiple single global
    local dense sparse stable unstable dynamic adaptive generic common open closed full partial hybrid
    """.split()
)


@dataclass(frozen=True)
class Name:
    """A name as term ids of a phrase index, with its main phrase's coverage and lift."""

    terms: tuple[int, ...]
    coverage: float
    lift: float


class PhraseNamer:
    """Names groups of papers (topics, or groups of topics) from one :class:`PhraseIndex`."""

    def __init__(
        self, index: PhraseIndex, n_phrases: int, embed: Callable[[list[str]], np.ndarray] | None = None
    ) -> None:
        self.index, self.n_phrases, self.embed = index, n_phrases, embed
        self._vectors: dict[int, np.ndarray] = {}
        self._counts: dict[Any, tuple[sparse.csr_matrix, sparse.csr_matrix]] = {}
        self._words: dict[int, list[str]] = {}
        self.totals = np.bincount(index.papers.indices, minlength=index.papers.shape[1])
        self.prefix, self.suffix = extensions(index)
        keys = index.keys.tolist()
        generic = np.array([key in GENERIC_WORDS for key in keys], dtype=bool)
        # A phrase that ends in an adjective is a fragment ("graph neural", "visual").
        adjective = np.array(
            [k in _ADJECTIVES or (k not in _NOUN_ENDINGS_OK and k.endswith(_ADJECTIVE_ENDINGS)) for k in keys], bool
        )
        # A single word that starts with a digit says too little alone ("3D", "360-degree").
        digit = np.array([key[:1].isdigit() for key in keys], dtype=bool)
        # One generic word ("equation"): no main phrase, but it may head a name with a telling second
        # phrase where no main phrase covers COVERAGE_FLOOR (:meth:`_broad_generic`).
        self.generic_word = np.zeros(sum(len(block) for block in index.ngrams), dtype=bool)
        if index.ngrams:
            single = index.ngrams[0][:, 0]
            self.generic_word[: len(single)] = generic[single] & ~adjective[single] & ~digit[single]
        self.barred = np.concatenate(
            [
                generic[block].all(axis=1) | adjective[block[:, -1]] | (digit[block[:, 0]] & (block.shape[1] == 1))
                for block in index.ngrams
            ]
            or [np.zeros(0, dtype=bool)]
        )
        self.fragment = fragments(self.prefix, self.totals)
        self.barred |= self.fragment
        self.spread: np.ndarray | None = None  # per term, how many topics COVERAGE_SPREAD of whose papers write it

    def count_spread(self, rows_of: Mapping[Any, np.ndarray]) -> None:
        """Count, per term, the topics ``rows_of`` that COVERAGE_SPREAD of whose papers write it (for genericness)."""
        spread = np.zeros(self.index.papers.shape[1], dtype=np.int64)
        for key, rows in rows_of.items():
            counts = self.counts(rows, key=key)[0].tocsr()
            spread[counts.indices[counts.data >= COVERAGE_SPREAD * max(len(rows), 1)]] += 1
        self.spread = spread

    def generic(self, terms: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """Which one-word ``terms``, written by ``inside`` papers of a topic, are generic in the pile (bool)."""
        terms = np.asarray(terms, dtype=np.int64)
        one_word = terms < len(self.index.ngrams[0])
        loose = np.asarray(inside) < SPECIFIC_SHARE * self.totals[terms]
        shared = self.spread[terms] >= GENERIC_SPREAD if self.spread is not None else np.zeros(len(terms), bool)
        return one_word & (loose | shared | self.generic_word[terms])

    def counts(self, rows: np.ndarray, key: Any = None) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """The (1, n_terms) paper counts of the papers ``rows``, title or abstract and title only.

        Counts with a ``key`` (a topic id) are kept, for the groups the topic joins.
        """
        if key is not None and key in self._counts:
            return self._counts[key]
        ones = sparse.csr_matrix(np.ones((1, len(rows)), dtype=np.int32))
        counts = ones @ self.index.papers[rows], ones @ self.index.titles[rows]
        if key is not None:
            self._counts[key] = counts
        return counts

    def meaning(self, terms: Sequence[int], centroid: np.ndarray) -> np.ndarray:
        """The cosine of each phrase's vector (the embedder's, of its words) to a unit ``centroid``."""
        missing = [term for term in dict.fromkeys(terms) if term not in self._vectors]
        if missing and self.embed is not None:
            vectors = np.asarray(self.embed([self.key_text(term) for term in missing]), dtype=np.float64)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self._vectors |= dict(zip(missing, vectors / np.where(norms > 0, norms, 1.0), strict=True))
        return np.array([float(self._vectors[term] @ centroid) for term in terms], dtype=np.float64)

    def key_text(self, term: int) -> str:
        return " ".join(self.words(term))

    def options(
        self,
        rows: np.ndarray,
        counts: tuple[sparse.csr_matrix, sparse.csr_matrix],
        n_mains: int = 3,
        centroid: np.ndarray | None = None,
    ) -> list[Name]:
        """Names for the papers ``rows``, best first: the best name, then alternatives for disambiguation.

        The alternatives are the best main phrase with another telling phrase (the most distinctive
        first, whether or not it covers more papers), then the next main phrases with theirs.
        ``centroid``: the papers' unit centroid, to weigh main phrases by meaning (with an embedder).
        """
        ranked = rank_phrases(*counts, len(rows), self.totals, self.index.papers.shape[0])
        pool = self._pool(ranked)
        mains = self._mains(ranked, pool, centroid=centroid)[:n_mains]
        if not mains:
            return []
        # A second phrase is one the authors put in a title too: "Fluid, prove" has none.
        telling = [
            int(term) for term, lift, titled in zip(ranked.terms[:SHORTLIST], ranked.lift[:SHORTLIST],
                                                    ranked.title_coverage[:SHORTLIST], strict=True)
            if lift >= MIN_LIFT and titled > 0 and not self.barred[term]
        ]  # fmt: skip
        position = positions_of(ranked, mains + telling)
        uses = self.index.papers[rows][:, mains + telling].toarray() > 0
        names = []
        for at, main in enumerate(mains):
            seconds, distinct = self._seconds(main, telling, uses[:, at], uses[:, len(mains) :])
            candidates = [self._grown_second(main, second, position, ranked, pool) for second in seconds]
            grown = [term for term in candidates if term is not None]
            short = len(self.words(main)) < MAX_NAME_WORDS
            variants: list[tuple[int, ...]] = []
            if short and self.n_phrases > 1:
                variants = list[tuple[int, ...]]((main, s) for s in dict.fromkeys(grown) if self._fits(main, s))[:3]
            variants = variants or [(main,)]
            if at == 0 and n_mains > 1:
                variants += [(main, o) for o in distinct[:5] if (main, o) not in variants and self._fits(main, o)]
            coverage, lift = float(ranked.coverage[position[main]]), float(ranked.lift[position[main]])
            names += [Name(terms, coverage, lift) for terms in variants]
        if n_mains > 1 and self.n_phrases > 1 and all(name.coverage < COVERAGE_FLOOR for name in names):
            names += self._broad_generic(ranked, telling, position, pool)
        return names

    def _broad_generic(
        self, ranked: Ranked, telling: list[int], position: dict[int, int], pool: np.ndarray
    ) -> list[Name]:
        """Names headed by the generic word that covers most papers, each with a telling second phrase.

        For a topic that no main phrase covers COVERAGE_FLOOR of ("Flow", 16% of a topic on partial
        differential equations): the word must cover COVERAGE_FLOOR and have MIN_LIFT
        ("Equations, incompressible fluids", 62%); never alone. Empty when none qualifies.
        """
        head = min(SHORTLIST, len(ranked.terms))
        enough = (ranked.lift[:head] >= MIN_LIFT) & (ranked.coverage[:head] >= COVERAGE_FLOOR)
        found = np.flatnonzero(self.generic_word[ranked.terms[:head]] & enough).tolist()
        if not found:
            return []
        at = max(found, key=lambda at: (float(ranked.coverage[at]), -at))
        word = int(ranked.terms[at])
        grown = [self._grown_second(word, second, position, ranked, pool) for second in telling]
        seconds = [
            term for term in dict.fromkeys(grown)
            if term is not None and not self.barred[term] and not self._related(word, term) and self._fits(word, term)
        ]  # fmt: skip
        return [Name((word, second), float(ranked.coverage[at]), float(ranked.lift[at])) for second in seconds[:3]]

    def _pool(self, ranked: Ranked, min_lift: float = MIN_LIFT) -> np.ndarray:
        """Where in ``ranked`` a shortlisted phrase may grow to: telling phrases of 2+ words that cover enough."""
        head = min(SHORTLIST, len(ranked.terms))
        if head == 0:
            return np.zeros(0, dtype=np.int64)
        least = GROW_SHARE * ranked.coverage[:head].min()
        pool = np.flatnonzero((ranked.lift >= min_lift) & (ranked.coverage >= least))
        return pool[np.maximum(self.prefix[ranked.terms[pool]], self.suffix[ranked.terms[pool]]) >= 0]

    def _mains(
        self, ranked: Ranked, pool: np.ndarray, min_lift: float = MIN_LIFT, centroid: np.ndarray | None = None
    ) -> list[int]:
        """Main phrases, best first, each grown into the longest phrase that still covers enough.

        Those that cover COVERAGE_FLOOR of the papers come first; with a ``centroid`` and an
        embedder, the MEANING_SHORTLIST best of them are ordered by score times meaning.
        """
        head = min(SHORTLIST, len(ranked.terms))
        chosen: list[int] = []
        for at in range(head):
            if ranked.lift[at] < min_lift:
                continue
            grown = self._grow(at, ranked, pool)  # "scale-free" alone is barred, "scale-free networks" is not
            if grown not in chosen and not self.barred[grown]:
                chosen.append(grown)
        # Ranked by their own scores: "field" grown into "magnetic field" has the score of "magnetic field".
        position = positions_of(ranked, chosen)
        score = {term: float(ranked.score[at]) for term, at in position.items()}
        coverage = {term: float(ranked.coverage[at]) for term, at in position.items()}
        ordered = sorted(chosen, key=lambda term: (coverage[term] < COVERAGE_FLOOR, -score[term]))
        if centroid is None or self.embed is None or len(ordered) < 2:
            return ordered
        best = ordered[:MEANING_SHORTLIST]
        weight = np.maximum(self.meaning(best, centroid), 0.0) ** MEANING_POWER
        weighed = {term: score[term] * w for term, w in zip(best, weight.tolist(), strict=True)}
        best = sorted(best, key=lambda term: (coverage[term] < COVERAGE_FLOOR, -weighed[term], term))
        return best + ordered[MEANING_SHORTLIST:]

    def _grow(self, at: int, ranked: Ranked, pool: np.ndarray) -> int:
        """The phrase at ``at`` grown word by word while the longer phrase covers GROW_SHARE of its papers."""
        prefix, suffix = self.prefix[ranked.terms[pool]], self.suffix[ranked.terms[pool]]
        enough = ranked.coverage[pool] > GROW_SHARE * ranked.coverage[at]
        if ranked.coverage[at] >= COVERAGE_FLOOR:
            enough &= ranked.coverage[pool] >= COVERAGE_FLOOR
        while True:
            term = ranked.terms[at]
            found = pool[((prefix == term) | (suffix == term)) & enough]
            if not len(found):
                return int(term)
            at = int(found[np.lexsort((ranked.terms[found], -ranked.coverage[found]))[0]])

    def _grown_second(
        self, main: int, second: int, position: dict[int, int], ranked: Ranked, pool: np.ndarray
    ) -> int | None:
        """``second`` grown as a main phrase is; None when the longer phrase is ``main``'s ("GRB, bursts")."""
        grown = self._grow(position[second], ranked, pool)
        return grown if not self._related(main, grown) else None

    def _related(self, main: int, other: int) -> bool:
        """Whether two phrases share a word (or part of one: "Video, video-language") or one abbreviates the other."""
        first, second = self.words(main), self.words(other)
        if set(_parts(first)) & set(_parts(second)) or any(_abbreviation(word, first) for word in second):
            return True
        if any(_same_stem(a, b) for a in first for b in second):  # "biases" is counted as "biase", "bias" as "bia"
            return True
        return len(first) == 1 and _abbreviation(first[0], second)

    def _fits(self, main: int, second: int) -> bool:
        return len(self.words(main)) + len(self.words(second)) <= MAX_NAME_WORDS

    def words(self, term: int) -> list[str]:
        if term not in self._words:
            self._words[term] = self.index.keys[self.index.term_keys(term)].tolist()
        return self._words[term]

    def _seconds(
        self, main: int, telling: list[int], main_uses: np.ndarray, uses: np.ndarray
    ) -> tuple[list[int], list[int]]:
        """Second phrases for ``main`` that cover papers it does not, and all that may follow it.

        Either kind is telling and shares no word with ``main`` nor abbreviates it.
        """
        gain = (uses & ~main_uses[:, None]).sum(axis=0)
        seconds, distinct = [], []
        for term, gained in zip(telling, gain.tolist(), strict=True):
            if self._related(main, term):
                continue
            distinct.append(term)
            if gained >= max(2, SECOND_GAIN * len(main_uses)):
                seconds.append(term)
        return seconds, distinct


def _parts(words: list[str]) -> list[str]:
    """The words of a phrase and the parts of its hyphenated words ("video-language": "video", "language")."""
    return words + [part for word in words if "-" in word for part in word.split("-") if part]


def _same_stem(first: str, second: str) -> bool:
    """Whether one counting key extends the other by at most two letters ("bia", "biase")."""
    short, long = sorted((first, second), key=len)
    return len(short) >= 3 and long.startswith(short) and len(long) - len(short) <= 2


def _abbreviation(word: str, phrase: list[str]) -> bool:
    """Whether ``word`` abbreviates ``phrase`` ("llm": "large language model", "grb": "gamma-ray burst")."""
    parts = [part for word in phrase for part in word.split("-") if part]
    return len(parts) > 1 and _abbreviates(word, parts)


def fragments(prefix: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Which terms the pile continues with one same word, bool ndarray of shape (n_terms,).

    A term is continued when more than CONTINUED_SHARE of the papers that write it write one of
    its one-word-longer terms (``prefix``: each term's first n-1 words, -1 for none).
    """
    longest = np.zeros(len(totals), dtype=np.int64)
    longer = np.flatnonzero(prefix >= 0)
    np.maximum.at(longest, prefix[longer], totals[longer])
    return longest > CONTINUED_SHARE * totals
