"""How much of each topic its name speaks for: the name audit.

For each topic, the name's main phrase (the part before the first ", ") is looked up in
its papers' titles and abstracts as the phrase index reads them (``pipeline.label.phrases``:
words in this order inside one sentence piece, case and plural "s" folded), whoever wrote
the name (this stage, an LLM, an older run). **coverage** is the share of the topic's
papers that write it, **lift** how many times more often they do than the rest of the pile
(smoothed by one paper). Each name is also checked for what a researcher would never write
(:func:`name_faults`): a part the texts never write in that order, a fragment (a part that
starts or ends with a stop word, or holds one a noun phrase does not: "groups we prove"), an
acronym written in lowercase ("llm" where the texts write "LLM"), and a name made only of
generic words ("Human, research"). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.label.naming import (
    CONTINUED_SHARE,
    COVERAGE_SPREAD,
    GENERIC_SPREAD,
    GENERIC_WORDS,
    SPECIFIC_SHARE,
)
from pipeline.label.phrases import PhraseTokens, fold, phrase_tokens
from pipeline.schema import OUTLIER_TOPIC
from pipeline.terms import ENGLISH_STOP_WORDS

# A name that covers less than this share of its topic speaks for too few of its papers.
LOW_COVERAGE = 0.2
_DECIMALS = 4
# Stop words a noun phrase may hold inside ("chain of thought", "question answering in the wild").
_INNER_WORDS = frozenset("of for and in on to with the a an via from by as at or".split())
# The faults a name may have, in the order they are reported: :func:`name_faults` finds the first four
# from the name and the texts, :func:`pile_faults` the last three from the other topics too.
FAULTS = ("unwritten", "fragment", "lowercased acronym", "generic only", "generic", "twin", "far")


def papers_writing(tokens: PhraseTokens, phrase: str) -> np.ndarray:
    """Which papers write ``phrase`` (its words in order inside one sentence piece), bool (n_papers,)."""
    words = [fold(word) for word in phrase_words(phrase)]
    found = np.zeros(tokens.n_papers, dtype=bool)
    ids = [tokens.key_id.get(word, -1) for word in words]
    if not ids or min(ids) < 0:
        return found
    starts = tokens.positions(ids[0])
    for offset, key in enumerate(ids[1:], start=1):
        starts = starts[starts + offset < len(tokens.words)]
        starts = starts[tokens.words[starts + offset] == key]
    found[tokens.paper_of[starts]] = True
    return found


def phrase_words(phrase: str) -> list[str]:
    """The words of a phrase as the phrase index splits texts ("Chain-of-Thought" is one word)."""
    from pipeline.label.phrases import _PIECES

    return [piece for piece in _PIECES.findall(phrase) if piece[0].isalnum()]


def name_faults(tokens: PhraseTokens, name: str) -> list[str]:
    """What is wrong with ``name`` by the texts ``tokens`` (a subset of :data:`FAULTS`; empty when nothing).

    - unwritten: one of its parts (split at ", ") is written by no paper, words in that order;
    - fragment: a part starts or ends with a stop word, or holds one a noun phrase does not, or
      the texts continue it with one same word in most of its uses (:func:`is_fragment`);
    - lowercased acronym: a word with fewer than two capitals that the texts write with two or
      more capitals more often than in lowercase ("llm", "Llm", "gpu", "cot");
    - generic only: every word is a generic word (``naming.GENERIC_WORDS``).
    """
    parts = [phrase_words(part) for part in name.split(", ")]
    parts = [part for part in parts if part]
    faults = set()
    if any(not papers_writing(tokens, " ".join(part)).any() for part in parts):
        faults.add("unwritten")
    for part in parts:
        lower = [word.lower() for word in part]
        edges = {lower[0], lower[-1]}
        if edges & ENGLISH_STOP_WORDS or set(lower[1:-1]) & (ENGLISH_STOP_WORDS - _INNER_WORDS):
            faults.add("fragment")
        elif is_fragment(tokens, " ".join(part)):
            faults.add("fragment")
    words = [word for part in parts for word in part]
    if any(_capitals(word) < 2 and _written_as_acronym(tokens, word) for word in words):
        faults.add("lowercased acronym")
    if words and all(fold(word) in GENERIC_WORDS or word.lower() in GENERIC_WORDS for word in words):
        faults.add("generic only")
    return [fault for fault in FAULTS if fault in faults]


def continuation(tokens: PhraseTokens, phrase: str) -> tuple[str, float]:
    """The word the texts write right after ``phrase`` most often (a counting key), and the share of its uses.

    Stop words do not continue a phrase ("agents for"), nor does the phrase's own abbreviation
    ("reinforcement learning rl"); ("", 0.0) when the phrase is never written.
    """
    from pipeline.label.names import _abbreviates

    words, uses_of_phrase, keys, counts = followers(tokens, phrase)
    if not uses_of_phrase:
        return "", 0.0
    best, uses = "", 0
    # Most written first, ties to the lower key: one numpy sort, not a Python sort of every follower.
    for at in np.lexsort((keys, -counts)).tolist():
        word = str(tokens.keys[keys[at]])
        if word not in ENGLISH_STOP_WORDS and not _abbreviates(word, words):
            best, uses = word, int(counts[at])
            break
    return best, uses / uses_of_phrase


def followers(tokens: PhraseTokens, phrase: str) -> tuple[list[str], int, np.ndarray, np.ndarray]:
    """``phrase``'s folded words, how often the texts write it, and the words that follow it (keys, counts).

    Keys are sorted; a follower is a counting key (not a stop word's or punctuation's place).
    """
    words = [fold(word) for word in phrase_words(phrase)]
    ids = [tokens.key_id.get(word, -1) for word in words]
    none = np.zeros(0, dtype=np.int64)
    if not ids or min(ids) < 0:
        return words, 0, none, none
    starts = tokens.positions(ids[0])
    for offset, key in enumerate(ids[1:], start=1):
        starts = starts[starts + offset < len(tokens.words)]
        starts = starts[tokens.words[starts + offset] == key]
    after = starts + len(ids)
    following = tokens.words[after[after < len(tokens.words)]]
    keys, counts = np.unique(following[following >= 0], return_counts=True)
    return words, len(starts), keys, counts


def is_fragment(tokens: PhraseTokens, phrase: str) -> bool:
    """Whether the texts continue ``phrase`` with one same word in most of its uses ("multimodal large").

    Twice at least: a phrase written once is no pattern ("judges agree"). The answer depends on
    the phrase's folded words alone; each is worked out once per ``tokens`` (``tokens.fragments``):
    the names chose among candidates that were asked already, and the audit asks again.
    """
    words = tuple(fold(word) for word in phrase_words(phrase))
    found = tokens.fragments.get(words)
    if found is None:
        word, share = continuation(tokens, phrase)
        uses = papers_writing(tokens, f"{phrase} {word}").sum() if word else 0
        found = tokens.fragments[words] = bool(share > CONTINUED_SHARE and uses >= 2)
    return found


def head_phrase(name: str) -> str:
    """A name's main phrase as counted (words folded, numbers dropped): names that share it are twins.

    "Agents (12)", a name made unique by its topic number, is the twin of "Agents".
    """
    return " ".join(fold(word) for word in phrase_words(main_phrase(name)) if not word.isdigit())


def twins(names: Mapping[Any, str]) -> set[Any]:
    """The keys of ``names`` (one level: topics, or groups) whose head phrase another name has too."""
    heads: dict[str, list[Any]] = {}
    for key, name in names.items():
        heads.setdefault(head_phrase(name), []).append(key)
    return {key for keys in heads.values() if len(keys) > 1 for key in keys}


def generic_names(tokens: PhraseTokens, topics_per_paper: np.ndarray, names: Mapping[int, str]) -> set[int]:
    """The real topics whose name is one word that is not specific to them in this pile.

    Specific: at least SPECIFIC_SHARE of the papers that write it are the topic's, and fewer than
    GENERIC_SPREAD topics have COVERAGE_SPREAD of their papers write it.
    """
    topics_per_paper = np.asarray(topics_per_paper)
    real = sorted(topic for topic in names if topic != OUTLIER_TOPIC)
    every = sorted(set(topics_per_paper.tolist()) - {OUTLIER_TOPIC})
    sizes = {topic: max(int((topics_per_paper == topic).sum()), 1) for topic in every}
    found = set()
    for topic in real:
        if "," in names[topic] or len(phrase_words(names[topic])) != 1:
            continue
        writes = papers_writing(tokens, names[topic])
        inside = writes & (topics_per_paper == topic)
        spread = sum((writes & (topics_per_paper == other)).sum() >= COVERAGE_SPREAD * sizes[other] for other in every)
        if inside.sum() < SPECIFIC_SHARE * writes.sum() or spread >= GENERIC_SPREAD:
            found.add(topic)
    return found


def centroid_ranks(
    embed: Callable[[list[str]], np.ndarray], names: Mapping[int, str], centroids: Mapping[int, np.ndarray]
) -> dict[int, int]:
    """Per topic of ``centroids``: the rank of its own centroid among all, by cosine to its name's vector (1 = nearest).

    ``embed`` is the run's embedding backend's (unit vectors); centroids are unit vectors.
    """
    topics = [topic for topic in centroids if topic != OUTLIER_TOPIC and topic in names]
    if not topics:
        return {}
    vectors = np.asarray(embed([names[topic] for topic in topics]), dtype=np.float64)
    matrix = np.stack([np.asarray(centroids[topic], dtype=np.float64) for topic in topics])
    cosines = vectors @ matrix.T  # (n_topics, n_topics)
    own = np.diag(cosines)
    return {topic: int((cosines[at] > own[at]).sum()) + 1 for at, topic in enumerate(topics)}


def _capitals(word: str) -> int:
    return sum(char.isupper() for char in word)


def _written_as_acronym(tokens: PhraseTokens, word: str) -> bool:
    key = tokens.key_id.get(fold(word), -1)
    if key < 0:
        return False
    uses = tokens.surface_uses
    shaped = lowered = 0
    for surface in np.flatnonzero(tokens.key_of == key).tolist():
        written = str(tokens.surfaces[surface])
        if _capitals(written) >= 2:
            shaped += int(uses[surface])
        elif written == written.lower():
            lowered += int(uses[surface])
    return shaped > lowered


def main_phrase(name: str) -> str:
    return name.split(", ")[0]


def name_audit(
    tokens: PhraseTokens, topics_per_paper: np.ndarray, names: Mapping[int, str]
) -> dict[int, tuple[float, float]]:
    """Per real topic in ``names``: the main phrase's (coverage, lift) in the topic's papers."""
    topics_per_paper = np.asarray(topics_per_paper)
    result = {}
    for topic, name in names.items():
        if topic == OUTLIER_TOPIC:
            continue
        members = topics_per_paper == topic
        writes = papers_writing(tokens, main_phrase(name))
        inside, size = int((writes & members).sum()), int(members.sum())
        outside, rest = int((writes & ~members).sum()), len(members) - size
        coverage = inside / size if size else 0.0
        lift = coverage / ((outside + 1) / (rest + 1))
        result[int(topic)] = (round(coverage, _DECIMALS), round(lift, _DECIMALS - 2))
    return result


def audit_summary(
    audit: Mapping[int, tuple[float, float]],
    names: Mapping[int, str],
    faults: Mapping[int, str] | None = None,
    ranks: Mapping[int, float] | None = None,
) -> dict[str, Any]:
    """The run's name audit for metrics.json: summary figures and one row per topic.

    ``faults``: per topic, its name's faults joined by ", " (:func:`name_faults`), when known;
    ``ranks``: per topic, its name's :func:`centroid_ranks` (NaN when unknown).
    """
    coverages = [coverage for coverage, _ in audit.values()]
    lifts = [lift for _, lift in audit.values()]
    if not coverages:
        return {"name_coverage_mean": None, "name_coverage_min": None, "name_low_coverage_share": None,
                "name_lift_median": None, "name_nearest_share": None, "name_faults": None,
                "name_audit": []}  # fmt: skip
    known = {topic: int(rank) for topic, rank in (ranks or {}).items() if not np.isnan(rank)}
    rows = [
        {"topic": topic, "phrase": main_phrase(names[topic]), "coverage": coverage, "lift": lift}
        | ({"rank": known[topic]} if topic in known else {})
        | ({"faults": faults.get(topic, "")} if faults is not None else {})
        for topic, (coverage, lift) in sorted(audit.items())
    ]
    nearest = [known[topic] == 1 for topic in audit if topic in known]
    return {
        "name_coverage_mean": round(float(np.mean(coverages)), _DECIMALS),
        "name_coverage_min": round(float(np.min(coverages)), _DECIMALS),
        "name_low_coverage_share": round(float(np.mean(np.array(coverages) < LOW_COVERAGE)), _DECIMALS),
        "name_lift_median": round(float(np.median(lifts)), _DECIMALS - 2),
        "name_nearest_share": round(float(np.mean(nearest)), _DECIMALS) if nearest else None,
        "name_faults": None if faults is None else sum(bool(faults.get(topic, "")) for topic in audit),
        "name_audit": rows,
    }


def pile_faults(
    tokens: PhraseTokens,
    topics_per_paper: np.ndarray,
    names: Mapping[int, str],
    groups: Mapping[int, tuple[int, str]] | None = None,
    ranks: Mapping[int, float] | None = None,
) -> dict[int, list[str]]:
    """The faults of each real topic's name that only the other topics show.

    - generic: a one-word name not specific to its topic in this pile (:func:`generic_names`);
    - twin: another topic's name has the same head phrase (:func:`twins`), or the name is its
      coarse group's head phrase alone (``groups``: per topic, its group and the group's name;
      a group of one topic excepted);
    - far: its vector is nearer another topic's centroid than its own (``ranks``: each name's
      :func:`centroid_ranks`; NaN when unknown).
    """
    real = {topic: name for topic, name in names.items() if topic != OUTLIER_TOPIC}
    generic, twin = generic_names(tokens, topics_per_paper, real), twins(real)
    groups = groups or {}
    members: dict[int, int] = {}
    for group_id, _ in groups.values():
        members[group_id] = members.get(group_id, 0) + 1
    faults = {}
    for topic, name in real.items():
        group_id, group_name = groups.get(topic, (OUTLIER_TOPIC, ""))
        repeats = members.get(group_id, 0) > 1 and "," not in name and head_phrase(name) == head_phrase(group_name)
        rank = (ranks or {}).get(topic, np.nan)
        found = {"generic": topic in generic, "twin": topic in twin or repeats, "far": bool(rank > 1)}
        faults[topic] = [fault for fault in FAULTS if found.get(fault)]
    return faults


def with_name_audit(
    topics: pd.DataFrame,
    tokens: PhraseTokens,
    topics_per_paper: np.ndarray,
    ranks: Mapping[int, int] | None = None,
) -> pd.DataFrame:
    """The topics table with its name audit columns (re)computed: coverage, lift, rank and faults.

    Coverage and lift are NaN for outliers; ``name_rank`` is ``ranks`` (:func:`centroid_ranks`),
    else the table's own column, else NaN; ``name_faults`` is the :func:`name_faults` and the
    :func:`pile_faults` of the name joined by ", " ("" for none and for outliers).
    """
    names = dict(zip(topics["topic"].astype(int).tolist(), topics["name"].astype(str).tolist(), strict=True))
    audit = name_audit(tokens, topics_per_paper, names)
    if ranks is not None:
        rank_column = [float(ranks.get(topic, np.nan)) for topic in names]
    elif "name_rank" in topics.columns:
        rank_column = topics["name_rank"].astype(float).tolist()
    else:
        rank_column = [np.nan] * len(names)
    rank_of = dict(zip(names, rank_column, strict=True))
    groups = None
    if {"coarse_topic", "coarse_name"} <= set(topics.columns):
        groups = {
            int(topic): (int(group), str(name))
            for topic, group, name in zip(topics["topic"], topics["coarse_topic"], topics["coarse_name"], strict=True)
            if int(topic) != OUTLIER_TOPIC
        }
    others = pile_faults(tokens, topics_per_paper, names, groups, rank_of)
    return topics.assign(
        name_coverage=[audit.get(topic, (np.nan, np.nan))[0] for topic in names],
        name_lift=[audit.get(topic, (np.nan, np.nan))[1] for topic in names],
        name_rank=[np.nan if topic == OUTLIER_TOPIC else rank_of[topic] for topic in names],
        name_faults=[
            ", ".join(fault for fault in FAULTS if fault in {*name_faults(tokens, name), *others[topic]})
            if topic != OUTLIER_TOPIC
            else ""
            for topic, name in names.items()
        ],
    )


def audit_of_topics(topics: pd.DataFrame) -> dict[str, Any]:
    """:func:`audit_summary` from a topics table that has the name audit columns (for metrics.json)."""
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    audit = {
        int(topic): (float(coverage), float(lift))
        for topic, coverage, lift in zip(real["topic"], real["name_coverage"], real["name_lift"], strict=True)
    }
    names = dict(zip(real["topic"].astype(int), real["name"].astype(str), strict=True))
    faults = (
        dict(zip(real["topic"].astype(int), real["name_faults"].fillna("").astype(str), strict=True))
        if "name_faults" in real.columns
        else None
    )
    ranks = (
        dict(zip(real["topic"].astype(int), real["name_rank"].astype(float), strict=True))
        if "name_rank" in real.columns
        else None
    )
    return audit_summary(audit, names, faults, ranks)


def texts_name_audit(papers: pd.DataFrame, topics: pd.DataFrame, topics_per_paper: np.ndarray) -> dict[str, Any]:
    """The name audit of any names (another run's, an LLM's) over the papers' titles and abstracts."""
    tokens = phrase_tokens(papers["title"].astype(str).tolist(), papers["abstract"].astype(str).tolist())
    return audit_of_topics(with_name_audit(topics, tokens, topics_per_paper))


def name_audit_metrics(papers: pd.DataFrame, assignments: pd.DataFrame, topics: pd.DataFrame) -> dict[str, Any]:
    """The name audit of a run for metrics.json.

    From the topics table's audit columns when it has them (runs of this version, LLM names
    included), else read from the papers' texts (runs from before the audit).
    """
    if {"name_coverage", "name_lift", "name_faults"} <= set(topics.columns):
        return audit_of_topics(topics)
    return texts_name_audit(papers, topics, assignments["topic"].to_numpy())
