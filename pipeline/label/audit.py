"""How much of each topic its name speaks for: the name audit.

For each topic, the name's main phrase (the part before the first ", ") is looked up in
its papers' titles and abstracts as the phrase index reads them (``pipeline.label.phrases``:
words in this order inside one sentence piece, case and plural "s" folded), whoever wrote
the name (this stage, an LLM, an older run). **coverage** is the share of the topic's
papers that write it, **lift** how many times more often they do than the rest of the pile
(smoothed by one paper). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.label.phrases import PhraseTokens, fold, phrase_tokens
from pipeline.schema import OUTLIER_TOPIC

# A name that covers less than this share of its topic speaks for too few of its papers.
LOW_COVERAGE = 0.2
_DECIMALS = 4


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


def audit_summary(audit: Mapping[int, tuple[float, float]], names: Mapping[int, str]) -> dict[str, Any]:
    """The run's name audit for metrics.json: summary figures and one row per topic."""
    coverages = [coverage for coverage, _ in audit.values()]
    lifts = [lift for _, lift in audit.values()]
    if not coverages:
        return {"name_coverage_mean": None, "name_coverage_min": None, "name_low_coverage_share": None,
                "name_lift_median": None, "name_audit": []}  # fmt: skip
    return {
        "name_coverage_mean": round(float(np.mean(coverages)), _DECIMALS),
        "name_coverage_min": round(float(np.min(coverages)), _DECIMALS),
        "name_low_coverage_share": round(float(np.mean(np.array(coverages) < LOW_COVERAGE)), _DECIMALS),
        "name_lift_median": round(float(np.median(lifts)), _DECIMALS - 2),
        "name_audit": [
            {"topic": topic, "phrase": main_phrase(names[topic]), "coverage": coverage, "lift": lift}
            for topic, (coverage, lift) in sorted(audit.items())
        ],
    }


def with_name_audit(topics: pd.DataFrame, tokens: PhraseTokens, topics_per_paper: np.ndarray) -> pd.DataFrame:
    """The topics table with its ``name_coverage`` and ``name_lift`` columns (re)computed (NaN for outliers)."""
    names = dict(zip(topics["topic"].astype(int).tolist(), topics["name"].astype(str).tolist(), strict=True))
    audit = name_audit(tokens, topics_per_paper, names)
    return topics.assign(
        name_coverage=[audit.get(topic, (np.nan, np.nan))[0] for topic in names],
        name_lift=[audit.get(topic, (np.nan, np.nan))[1] for topic in names],
    )


def audit_of_topics(topics: pd.DataFrame) -> dict[str, Any]:
    """:func:`audit_summary` from a topics table that has the name audit columns (for metrics.json)."""
    real = topics[topics["topic"] != OUTLIER_TOPIC]
    audit = {
        int(topic): (float(coverage), float(lift))
        for topic, coverage, lift in zip(real["topic"], real["name_coverage"], real["name_lift"], strict=True)
    }
    return audit_summary(audit, dict(zip(real["topic"].astype(int), real["name"].astype(str), strict=True)))


def texts_name_audit(papers: pd.DataFrame, topics: pd.DataFrame, topics_per_paper: np.ndarray) -> dict[str, Any]:
    """The name audit of any names (another run's, an LLM's) over the papers' titles and abstracts."""
    tokens = phrase_tokens(papers["title"].astype(str).tolist(), papers["abstract"].astype(str).tolist())
    return audit_of_topics(with_name_audit(topics, tokens, topics_per_paper))


def name_audit_metrics(papers: pd.DataFrame, assignments: pd.DataFrame, topics: pd.DataFrame) -> dict[str, Any]:
    """The name audit of a run for metrics.json.

    From the topics table's audit columns when it has them (runs of this version, LLM names
    included), else read from the papers' texts (runs from before the audit).
    """
    if "name_coverage" in topics.columns and "name_lift" in topics.columns:
        return audit_of_topics(topics)
    return texts_name_audit(papers, topics, assignments["topic"].to_numpy())
