"""Which of its candidate names each topic and group gets: names that tell them apart.

The candidates come from :class:`~pipeline.label.naming.PhraseNamer` (best first by coverage,
lift and use in titles). Among them, at one level (the topics; the coarse groups):

- **no twins**: no two topics share a head phrase (a name's main phrase: no "Agents" beside
  "Agents, environments"). Topics whose best candidates start with the same phrase weigh each
  candidate by how well it separates them: its coverage in the topic less its highest coverage
  in the others (Toponymy's disambiguation pass, done with phrases). The topic the shared head
  covers most keeps it: the others' candidates with that head come after all their others, even
  generic ones ("Black hole" names the topic it covers 82% of, not the larger one it covers 63%
  of); then the largest topic chooses first, and a later one takes its best candidate whose head
  is still free;
- **meaning checked**: with an embedder (the run's backend), every candidate's vector is compared
  with all topics' centroids; a candidate nearer another topic's centroid than its own is *far*;
- **maximal phrases**: a candidate with a part the texts continue with one same word in most of its
  uses (``audit.is_fragment``) comes last;
- **specific before generic**: a candidate headed by a one-word phrase generic in the pile
  (:meth:`~pipeline.label.naming.PhraseNamer.generic`, counted over these topics) is *generic*;
  far and generic candidates come after the others when one of those covers NEAR_SHARE of what
  the topic's best candidate covers, give or take NEAR_SLACK papers (coverage, lift and use in
  titles still count). Where none does, genericness tells nothing: the near candidate whose head
  covers most papers comes first.
  A generic head comes with a second phrase, not alone, when the names have two phrases
  ("Reasoning, LLMs", not "Reasoning"), a specific second before a generic one;
- names from elsewhere (an LLM's) go through the same audit, and a topic whose name fails it keeps
  its phrase name (:func:`phrase_names_where_faulty`);
- a coarse group of several topics is not named by the head phrase of one of its topics whose
  name is that phrase alone, nor by another group's head phrase, while another candidate is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.label import naming
from pipeline.label.audit import centroid_ranks, is_fragment, with_name_audit
from pipeline.label.names import rename_topics
from pipeline.label.naming import MIN_LIFT, Name, PhraseNamer
from pipeline.label.phrases import PhraseIndex, PhraseTokens, positions_of, rank_phrases
from pipeline.label.spelling import spell
from pipeline.schema import OUTLIER_TOPIC

# Below this coverage a group takes its largest topic's main phrase.
GROUP_MIN_COVERAGE = 0.2
# A group's phrase must have at least this share of the highest lift the group's size allows (or MIN_LIFT).
GROUP_LIFT_SHARE = 0.3
# The faults that send a name not built from phrases (an LLM's) back to the phrase name; such a name
# need not be written word for word by any paper, nor keep the texts' capitals.
OTHER_NAME_FAULTS = frozenset({"fragment", "generic only", "generic", "twin", "far"})
# A candidate nearer another topic's centroid, or headed by a one-word phrase generic in the pile, gives
# way to one that is neither only when that one covers at least this share of what the topic's best
# candidate covers ("Hallucinations", 97% of its topic, is not "Mitigating hallucinations", 32%).
NEAR_SHARE = 0.7
# ... give or take this many papers: in a topic of 5, covering 2 papers rather than 3 is chance, not breadth.
NEAR_SLACK = 1
RankKey = tuple[bool, bool, bool, bool, bool, bool, float, float, int, bool, int]
# Main phrases a topic's candidates are drawn from: enough that twins still find a free head.
TOPIC_MAINS = 6


def topic_names(
    namer: PhraseNamer,
    rows_of: dict[int, np.ndarray],
    fallback: Callable[[int], str],
    centroids: Mapping[int, np.ndarray] | None = None,
) -> tuple[dict[int, str], dict[int, Name]]:
    """Names for the topics ``rows_of``, no two with one head phrase, and each name's terms.

    ``fallback(topic)`` names a topic for which no phrase qualifies (then it has no :class:`Name`).
    ``centroids``: each topic's unit centroid, to weigh phrases by meaning and check that a name
    is nearest to its own topic.
    """
    order = sorted(rows_of, key=lambda topic: (-len(rows_of[topic]), topic))
    namer.count_spread(rows_of)
    options = {}
    for topic in order:
        centroid = None if centroids is None else centroids.get(topic)
        counts = namer.counts(rows_of[topic], key=topic)
        options[topic] = namer.options(rows_of[topic], counts, n_mains=TOPIC_MAINS, centroid=centroid)
    far = far_options(namer, options, centroids)
    separation = contested_separation(namer, options, rows_of)
    fragment = fragment_terms(namer, options)
    chosen: dict[int, Name] = {}
    taken: set[int] = set()
    for topic in order:
        size, candidates = len(rows_of[topic]), options[topic]
        heads = np.array([name.terms[0] for name in candidates], dtype=np.int64)
        inside = np.array([name.coverage * size for name in candidates])
        generic = namer.generic(heads, np.rint(inside)).tolist() if candidates else []
        # After a generic head, a generic second phrase ("Reasoning, LLMs", "Video, long") tells less than a
        # specific one: it comes after the head's other variants (the head's place, first of its variants, stays).
        seconds = np.array([name.terms[-1] for name in candidates], dtype=np.int64)
        written = namer.counts(rows_of[topic], key=topic)[0][:, seconds].toarray().ravel()
        vague = (namer.generic(seconds, written) & (np.array([len(n.terms) for n in candidates]) > 1)).tolist()
        first: dict[int, int] = {}
        for at, candidate in enumerate(candidates):
            first.setdefault(candidate.terms[0], at)
        best = max((name.coverage for name in candidates), default=0.0)
        broad = [(name.coverage - NEAR_SHARE * best) * size >= -NEAR_SLACK for name in candidates]
        # A far or generic candidate gives way to a near, specific one that covers enough; else a far
        # one gives way to a near one (generic or not) that covers enough.
        specific = any(b and not f and not g for b, f, g in zip(broad, far[topic], generic, strict=True))
        near = any(b and not f for b, f in zip(broad, far[topic], strict=True))
        paired = {name.terms[0] for name in candidates if len(name.terms) > 1} if namer.n_phrases > 1 else set()

        def rank(at: int, topic: int = topic, generic: list[bool] = generic, specific: bool = specific,
                 near: bool = near, paired: set[int] = paired, vague: list[bool] = vague,
                 first: dict[int, int] = first) -> RankKey:  # fmt: skip
            name, is_far = options[topic][at], far[topic][at]
            fragments = any(fragment[term] for term in name.terms)
            low = name.coverage < naming.COVERAGE_FLOOR
            yields = separation.get((topic, at), 0.0) < 0  # a rival's shared head: it covers the rival more
            # Where no specific head covers enough, genericness tells nothing: the near head covering most wins.
            broadest = 0.0 if specific or is_far else -name.coverage
            # A generic word alone ("Reasoning") says less than with a second phrase ("Reasoning, mathematics").
            lone = generic[at] and len(name.terms) == 1 and name.terms[0] in paired
            return (fragments, low, yields, specific and (is_far or generic[at]), near and is_far, lone,
                    -separation.get((topic, at), 0.0), broadest, first[name.terms[0]], generic[at] and vague[at],
                    at)  # fmt: skip

        ranked = sorted(range(len(options[topic])), key=rank)
        pick = next((options[topic][at] for at in ranked if options[topic][at].terms[0] not in taken), None)
        if pick is not None:
            chosen[topic] = pick
            taken.add(pick.terms[0])
    names = spelled_names(namer.index, chosen)
    used = {name.casefold() for name in names.values()}
    for topic in order:
        if topic not in names:
            name = fallback(topic)
            names[topic] = name if name.casefold() not in used else f"{name} ({topic})"
            used.add(names[topic].casefold())
    return names, chosen


def far_options(
    namer: PhraseNamer, options: Mapping[int, list[Name]], centroids: Mapping[int, np.ndarray] | None
) -> dict[int, list[bool]]:
    """Per topic, whether each candidate's vector is nearer another topic's centroid than its own.

    All False without an embedder or centroids. The candidates are embedded as they will be
    written (:func:`spelled_names`), in one batch.
    """
    far = {topic: [False] * len(names) for topic, names in options.items()}
    topics = [topic for topic in options if centroids is not None and topic in centroids]
    if namer.embed is None or centroids is None or len(topics) < 2:
        return far
    candidates = {(topic, at): name for topic in topics for at, name in enumerate(options[topic])}
    text_of = spelled_names(namer.index, candidates)
    ordered = sorted(set(text_of.values()))
    vectors = np.asarray(namer.embed(ordered), dtype=np.float64) if ordered else np.zeros((0, 0))
    vector_of = dict(zip(ordered, vectors, strict=True))
    matrix = np.stack([np.asarray(centroids[topic], dtype=np.float64) for topic in topics])  # (n_topics, dim)
    for row, topic in enumerate(topics):
        for at in range(len(options[topic])):
            cosines = matrix @ vector_of[text_of[(topic, at)]]
            far[topic][at] = bool(cosines.max() > cosines[row])
    return far


def contested_separation(
    namer: PhraseNamer, options: Mapping[int, list[Name]], rows_of: Mapping[int, np.ndarray]
) -> dict[tuple[int, int], float]:
    """For topics whose best candidates share a head phrase: how well each candidate's head separates them.

    Keyed by (topic, candidate's place); the separation is the head's coverage in the topic less
    its highest coverage in the other topics of the same best head. The topic that the shared head
    covers most keeps its own order (no separation): it keeps the head, the others move off it.
    """
    by_head: dict[int, list[int]] = {}
    for topic, names in options.items():
        if names:
            by_head.setdefault(names[0].terms[0], []).append(topic)
    separation = {}
    for rivals in (topics for topics in by_head.values() if len(topics) > 1):
        heads = sorted({name.terms[0] for topic in rivals for name in options[topic]})
        coverage = {
            topic: np.asarray(namer.counts(rows_of[topic], key=topic)[0][:, heads].todense()).ravel()
            / max(len(rows_of[topic]), 1)
            for topic in rivals
        }
        column = {head: at for at, head in enumerate(heads)}
        shared = column[options[rivals[0]][0].terms[0]]
        owner = max(rivals, key=lambda topic: (coverage[topic][shared], len(rows_of[topic]), -topic))
        for topic in (topic for topic in rivals if topic != owner):
            others = np.max([coverage[other] for other in rivals if other != topic], axis=0)
            for at, name in enumerate(options[topic]):
                where = column[name.terms[0]]
                separation[(topic, at)] = float(coverage[topic][where] - others[where])
    return separation


def fragment_terms(namer: PhraseNamer, options: Mapping[int, list[Name]]) -> dict[int, bool]:
    """Per candidate phrase: whether the texts continue it with one same word in most uses (``audit.is_fragment``)."""
    terms = {term for names in options.values() for name in names for term in name.terms}
    return {term: is_fragment(namer.index.text, namer.key_text(term)) for term in sorted(terms)}


def spelled_names(index: PhraseIndex, chosen: Mapping[Any, Name]) -> dict[Any, str]:
    """Each name's phrases as the texts spell them, joined by ", ", first letter capitalised."""
    spelled = spell(index, {term for name in chosen.values() for term in name.terms})
    names = {}
    for key, name in chosen.items():
        text = ", ".join(spelled[term] for term in name.terms)
        names[key] = text[0].upper() + text[1:] if text[:1].islower() else text
    return names


def group_namer(
    namer: PhraseNamer,
    topics: list[int],
    rows_of: dict[int, np.ndarray],
    chosen: dict[int, Name],
    names: dict[int, str],
    tree: Callable[[Callable[[list[int]], str]], tuple[Any, dict[int, int]]],
    centroids: Mapping[int, np.ndarray] | None = None,
) -> Callable[[list[int]], str]:
    """A function naming any group of the topic tree (its leaves -> a name), every name spelled in one pass.

    ``tree(name_group)`` builds the tree with a namer; it is called once here with a namer that only
    records which groups the tree names (its merges and its coarse groups). The coarse groups
    (one level) get names with distinct head phrases, larger groups choosing first.
    """
    seen: list[tuple[int, ...]] = []

    def record(leaves: list[int]) -> str:
        seen.append(tuple(leaves))
        return ""

    _, coarse_of = tree(record)
    coarse = [tuple(t for t in topics if coarse_of[t] == group) for group in sorted(set(coarse_of.values()))]
    found = {
        leaves: group_options(namer, leaves, rows_of, chosen, centroids) for leaves in dict.fromkeys(seen + coarse)
    }
    picked = {leaves: options[0] for leaves, options in found.items() if options}
    heads: set[int] = set()
    for leaves in sorted(coarse, key=lambda leaves: (-sum(len(rows_of[leaf]) for leaf in leaves), leaves)):
        alone = {chosen[leaf].terms[0] for leaf in leaves if leaf in chosen and len(chosen[leaf].terms) == 1}
        alone = alone if len(leaves) > 1 else set()
        free = [name for name in found[leaves] if name.terms[0] not in heads | alone]
        if free:
            picked[leaves] = free[0]
        if leaves in picked:
            heads.add(picked[leaves].terms[0])
    spelled = spelled_names(namer.index, picked)
    return lambda leaves: spelled.get(tuple(leaves)) or names[leaves[0]]


def group_name(
    namer: PhraseNamer,
    leaves: Sequence[int],
    rows_of: dict[int, np.ndarray],
    chosen: dict[int, Name],
    centroids: Mapping[int, np.ndarray] | None = None,
) -> Name | None:
    """A group of topics' name: its best :func:`group_options`, None when it has none."""
    options = group_options(namer, leaves, rows_of, chosen, centroids)
    return options[0] if options else None


def group_options(
    namer: PhraseNamer,
    leaves: Sequence[int],
    rows_of: dict[int, np.ndarray],
    chosen: dict[int, Name],
    centroids: Mapping[int, np.ndarray] | None = None,
) -> list[Name]:
    """A group of topics' candidate names, best first: phrases common to its topics, its own, its topics'.

    Common: the group's main phrases that cover GROUP_MIN_COVERAGE of the group's papers and a
    tenth of the papers of more than half its topics; then its other main phrases that cover
    GROUP_MIN_COVERAGE; then its topics' main phrases, largest topic first.
    """
    size = sum(len(rows_of[leaf]) for leaf in leaves)
    children = [namer.counts(rows_of[leaf], key=leaf) for leaf in leaves]
    papers = sparse.vstack([counts for counts, _ in children]).tocsc()  # (n_leaves, n_terms)
    titles = sparse.vstack([counts for _, counts in children])
    ones = sparse.csr_matrix(np.ones((1, len(leaves)), dtype=np.int32))
    ranked = rank_phrases(ones @ papers, ones @ titles, size, namer.totals, namer.index.papers.shape[0])
    # A group of a third of the pile cannot be 3 times more frequent inside than outside: it needs
    # GROUP_LIFT_SHARE of the lift it could have at most.
    min_lift = min(MIN_LIFT, GROUP_LIFT_SHARE * namer.index.papers.shape[0] / max(size, 1))
    centroid: np.ndarray | None = None
    if centroids is not None and all(leaf in centroids for leaf in leaves):
        total = np.sum([len(rows_of[leaf]) * centroids[leaf] for leaf in leaves], axis=0)
        centroid = total / max(float(np.linalg.norm(total)), 1e-12)
    mains = namer._mains(ranked, namer._pool(ranked, min_lift), min_lift, centroid)
    options: list[Name] = []
    if mains:
        position = positions_of(ranked, mains)
        bar = 0.1 * np.array([len(rows_of[leaf]) for leaf in leaves])
        common = (papers[:, mains].toarray() >= bar[:, None]).sum(axis=0)
        covering = [main for main in mains if ranked.coverage[position[main]] >= GROUP_MIN_COVERAGE]
        shared = [main for main, n in zip(mains, common.tolist(), strict=True) if n * 2 > len(leaves)]
        best = [main for main in covering if main in shared] + [main for main in covering if main not in shared]
        options += [Name((m,), float(ranked.coverage[position[m]]), float(ranked.lift[position[m]])) for m in best]
    for leaf in sorted(leaves, key=lambda leaf: (-len(rows_of[leaf]), leaf)):
        if leaf in chosen and all(name.terms != chosen[leaf].terms[:1] for name in options):
            options.append(Name(chosen[leaf].terms[:1], chosen[leaf].coverage, chosen[leaf].lift))
    return options


def phrase_names_where_faulty(
    phrase_topics: pd.DataFrame,
    renamed: pd.DataFrame,
    tokens: PhraseTokens,
    topics_per_paper: np.ndarray,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    centroids: Mapping[int, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Other names (an LLM's: ``renamed``) audited, each topic's falling back to its phrase name on a fault.

    ``phrase_topics`` is the table of phrase names ``renamed`` was made from. A name fails on a fault
    of :data:`OTHER_NAME_FAULTS`; ``embed`` and ``centroids`` (the topics' unit centroids) rank
    each name among the centroids. Returns the table audited, with the names that pass.
    """

    def audited(table: pd.DataFrame) -> pd.DataFrame:
        names = dict(zip(table["topic"].astype(int), table["name"].astype(str), strict=True))
        ranks = None if embed is None or centroids is None else centroid_ranks(embed, names, centroids)
        return with_name_audit(table, tokens, topics_per_paper, ranks)

    checked = audited(renamed)
    failed = {
        int(topic)
        for topic, faults in zip(checked["topic"], checked["name_faults"], strict=True)
        if set(str(faults).split(", ")) & OTHER_NAME_FAULTS
    }
    if not failed:
        return checked
    phrase_of = dict(zip(phrase_topics["topic"].astype(int), phrase_topics["name"].astype(str), strict=True))
    kept = {
        int(topic): phrase_of[int(topic)] if int(topic) in failed else str(name)
        for topic, name in zip(renamed["topic"], renamed["name"], strict=True)
        if int(topic) != OUTLIER_TOPIC
    }
    return audited(rename_topics(phrase_topics, kept))
