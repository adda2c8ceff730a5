"""Names that speak for their topics while telling them apart: which candidate wins where rules tie."""

from __future__ import annotations

import numpy as np

from pipeline.config import LabelConfig
from pipeline.label import stop_words
from pipeline.label.audit import generic_names, main_phrase, papers_writing, twins
from pipeline.label.choose import topic_names
from pipeline.label.naming import COVERAGE_FLOOR, PhraseNamer
from pipeline.label.phrases import build_phrase_index, phrase_tokens

STOP = stop_words(LabelConfig())


def named(titles: list[str], rows_of: dict[int, np.ndarray], n_phrases: int = 2) -> dict[int, str]:
    index = build_phrase_index(phrase_tokens(titles, [""] * len(titles)), STOP, 2)
    names, _ = topic_names(PhraseNamer(index, n_phrases), rows_of, lambda topic: f"Topic {topic}")
    return names


def coverage(titles: list[str], rows: np.ndarray, name: str) -> float:
    tokens = phrase_tokens(titles, [""] * len(titles))
    return float(papers_writing(tokens, main_phrase(name))[rows].mean())


def spread_fillers(word: str, subjects: tuple[str, ...] = ("Protein folding", "Image segmentation")) -> list[str]:
    """Ten papers per subject, three of which write ``word``: it is then written by a fifth of those topics."""
    return [title for s in subjects for title in [f"{s} {word} {i}" for i in range(3)] + [f"{s} {i}" for i in range(7)]]


def test_a_shared_head_goes_to_the_topic_it_covers_most_even_when_the_larger_one_has_only_generic_alternatives():
    # Topic 0 (10 papers, chooses first) writes "black hole" in 6 and "horizons" in 4; topic 1 (6 papers)
    # writes "black hole" in all. "Horizons" is generic (a fifth of topics 2 and 3 write it too), yet
    # topic 1 keeps "Black hole": giving it up costs topic 0 less than it would cost topic 1.
    titles = [f"Black hole {i}" for i in range(6)] + [f"Horizons {i}" for i in range(4)]
    titles += [f"Black hole {i}: gravitational waves" for i in range(3)] + [f"Black hole {i}" for i in range(3, 6)]
    titles += spread_fillers("horizons") + [f"Weather forecasting {i}" for i in range(60)]
    rows_of = {0: np.arange(10), 1: np.arange(10, 16), 2: np.arange(16, 26), 3: np.arange(26, 36)}
    rows_of[4] = np.arange(36, 96)
    names = named(titles, rows_of)
    assert main_phrase(names[1]) == "Black hole", names
    assert main_phrase(names[0]) == "Horizons", names
    assert twins(names) == set()


def test_a_topic_no_phrase_covers_a_fifth_of_gets_a_covering_generic_word_with_a_telling_phrase():
    # Topic 0 (20 papers) writes "equations" in 14 but every other phrase in at most 3 (0.15 < COVERAGE_FLOOR):
    # "Equations" alone is generic only; with a second phrase it heads the name and speaks for 70%.
    subjects = ["navier-stokes flows", "elliptic problems", "porous media", "kinetic models", "shallow water"]
    subjects += ["finite volumes", "spectral methods"]
    titles = [f"Equations of {subjects[i % 7]} {i}" if i < 14 else f"{subjects[i % 7]} {i}" for i in range(20)]
    titles += [f"Weather forecasting {i}" for i in range(60)] + [f"Protein folding {i}" for i in range(40)]
    rows_of = {0: np.arange(20), 1: np.arange(20, 80), 2: np.arange(80, 120)}
    names = named(titles, rows_of)
    head, _, second = names[0].partition(", ")
    assert head == "Equations" and second, names  # never the generic word alone
    assert coverage(titles, rows_of[0], names[0]) == 0.7 >= COVERAGE_FLOOR
    assert "Equations" not in named(titles, rows_of, n_phrases=1)[0]  # one phrase asked: no generic head


def test_where_no_specific_phrase_covers_enough_the_near_phrase_covering_most_heads_the_name():
    # Topic 0 writes "lattice" in 5 papers of 10 and "phases" in 7; both are generic (written by a fifth of
    # two other topics). "Lattice" is rare elsewhere (lift 17) and scores higher; "phases", in a fifth of
    # the pile (lift 3.3), covers more of topic 0 and heads its name.
    titles = [f"Lattice {i}" for i in range(3)] + [f"Lattice phases {i}" for i in range(3, 5)]
    titles += [f"Phases {i}" for i in range(5, 10)]
    titles += [f"Sea ice {i}" for i in range(4)] + ["Sea ice lattice"] + [f"Ocean waves {i}" for i in range(4)]
    titles += ["Ocean lattice"] + [f"Weather forecasting {i}" for i in range(48)] + [f"Phases {i}" for i in range(12)]
    rows_of = {0: np.arange(10), 1: np.arange(10, 15), 2: np.arange(15, 20), 3: np.arange(20, 80)}
    names = named(titles, rows_of)
    assert main_phrase(names[0]) == "Phases", names
    assert coverage(titles, rows_of[0], names[0]) == 0.7


def test_a_generic_word_heads_a_name_with_a_second_phrase_not_alone():
    # "Reasoning" is in every title of topic 0 and in 3 of 10 of topics 1 and 2: generic; "chain-of-thought"
    # (4 of 10) covers too little to head the name, but with it the name tells topic 0 apart.
    titles = [f"Reasoning {i}: chain-of-thought" for i in range(4)] + [f"Reasoning {i}" for i in range(4, 10)]
    titles += spread_fillers("reasoning") + [f"Weather forecasting {i}" for i in range(60)]
    rows_of = {topic: np.arange(10 * topic, 10 * topic + 10) for topic in range(3)} | {3: np.arange(30, 90)}
    names = named(titles, rows_of)
    assert names[0] == "Reasoning, chain-of-thought", names
    tokens = phrase_tokens(titles, [""] * len(titles))
    per_paper = np.concatenate([np.full(len(rows), topic) for topic, rows in rows_of.items()])
    assert generic_names(tokens, per_paper, {0: "Reasoning"}) == {0}  # alone, the audit flags it
    assert generic_names(tokens, per_paper, names) == set()
    assert named(titles, rows_of, n_phrases=1)[0] == "Reasoning"  # one phrase asked: the word alone


def test_after_a_generic_head_a_specific_second_phrase_comes_before_a_generic_one():
    # "LLMs" (8 of topic 0's 10 papers, and 3 of 10 of topics 1 and 2: generic) scores above
    # "chain-of-thought" (4 of 10, only topic 0's); after the generic "Reasoning" the specific one tells more.
    titles = [f"Reasoning {i} with LLMs: chain-of-thought" for i in range(2)]
    titles += [f"Reasoning {i}: chain-of-thought" for i in range(2, 4)] + [
        f"Reasoning {i} with LLMs" for i in range(4, 10)
    ]
    titles += spread_fillers("reasoning") + spread_fillers("LLMs", ("Sea ice", "Ocean waves"))
    titles += [f"Weather forecasting {i}" for i in range(60)]
    rows_of = {topic: np.arange(10 * topic, 10 * topic + 10) for topic in range(5)} | {5: np.arange(50, 110)}
    assert named(titles, rows_of)[0] == "Reasoning, chain-of-thought"


def test_a_second_phrase_shares_no_part_of_a_hyphenated_word_with_the_first():
    titles = [f"Video {i}: video-language models" for i in range(6)] + [f"Video {i}: long clips" for i in range(6, 9)]
    index = build_phrase_index(phrase_tokens(titles, [""] * len(titles)), STOP, 2)
    namer = PhraseNamer(index, 2)
    term = {index.key_text(t): t for t in range(index.papers.shape[1])}
    assert namer._related(term["video"], term["video-language"])
    assert namer._related(term["video-language model"], term["video"])
    assert not namer._related(term["video"], term["long clip"])
