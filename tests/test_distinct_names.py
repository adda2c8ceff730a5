"""Names that tell topics apart: no fragments, no twins, no lone generic words, nearest their own centroid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig
from pipeline.label import stop_words
from pipeline.label.audit import (
    centroid_ranks,
    continuation,
    followers,
    generic_names,
    is_fragment,
    name_faults,
    pile_faults,
    twins,
    with_name_audit,
)
from pipeline.label.choose import topic_names
from pipeline.label.naming import PhraseNamer
from pipeline.label.phrases import build_phrase_index, phrase_tokens

STOP = stop_words(LabelConfig())


def namer_of(titles: list[str], embed=None, n_phrases: int = 1) -> PhraseNamer:
    index = build_phrase_index(phrase_tokens(titles, [""] * len(titles)), STOP, 2)
    return PhraseNamer(index, n_phrases, embed)


def words_embedder(vocabulary: dict[str, list[float]], dim: int):
    """A fake embedding backend: the sum of its words' vectors (unknown words: the last axis), unit rows."""

    def embed(texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), dim))
        for row, text in enumerate(texts):
            for word in text.lower().replace(",", " ").split():
                vectors[row] += vocabulary.get(word.rstrip("s"), np.eye(dim)[dim - 1])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return embed


def fragment_pile() -> list[str]:
    # Topic 0 (10 papers) writes "multimodal large" before three words, none in most; topic 1 (20 papers)
    # writes "multimodal large language models": in the pile, "language" follows "multimodal large"
    # in 24 of its 30 papers. Topic 0's papers also write "remote sensing" (6 of 10).
    words = ["vision"] * 4 + ["audio"] * 3 + ["video"] * 3
    titles = [f"Multimodal large {word} models {i}" for i, word in enumerate(words)]
    titles = [f"{title}: remote sensing" if i < 6 else title for i, title in enumerate(titles)]
    titles += [f"Multimodal large language models: reasoning {i}" for i in range(20)]
    titles += [f"Protein folding {i}" for i in range(100)]
    return titles


def test_a_phrase_the_pile_continues_with_one_word_is_a_fragment_and_names_no_topic():
    titles = fragment_pile()
    namer = namer_of(titles)
    index = namer.index
    term = {index.key_text(t): t for t in range(index.papers.shape[1])}
    assert namer.fragment[term["multimodal large"]]  # "language" follows it in 24 of its 30 papers
    assert not namer.fragment[term["multimodal large language model"]]
    assert not namer.fragment[term["protein folding"]]
    rows_of = {0: np.arange(10), 1: np.arange(10, 30), 2: np.arange(30, 130)}
    names, _ = topic_names(namer, rows_of, lambda topic: f"Topic {topic}")
    assert names[0] == "Remote sensing"  # not "Multimodal large": the texts say what follows it
    assert names[1] == "Multimodal large language models"
    tokens = phrase_tokens(titles, [""] * len(titles))
    assert is_fragment(tokens, "multimodal large") and not is_fragment(tokens, "Multimodal large language models")
    assert not is_fragment(tokens, "remote sensing")  # followed by a different number each time
    assert name_faults(tokens, "Multimodal large, remote sensing") == ["fragment"]
    once = phrase_tokens(["Judges agree", "LLM judges"], ["", ""])
    assert not is_fragment(once, "judges")  # continued once: no pattern


def test_siblings_with_one_best_phrase_get_different_heads_and_the_audit_finds_twins(monkeypatch):
    titles = [f"Agents for web tasks {i}" for i in range(10)] + [f"Agents in environments {i}" for i in range(8)]
    titles[:6] = [f"{title} on websites" for title in titles[:6]]
    titles[10:15] = [f"{title} with simulators" for title in titles[10:15]]
    titles += [f"Image captioning {i}" for i in range(40)]
    namer = namer_of(titles, n_phrases=2)
    rows_of = {0: np.arange(10), 1: np.arange(10, 18), 2: np.arange(18, 58)}
    names, _ = topic_names(namer, rows_of, lambda topic: f"Topic {topic}")
    heads = [name.split(", ")[0].casefold() for name in names.values()]
    assert len(set(heads)) == 3, names  # never "Agents, web tasks" beside "Agents, environments"
    assert twins(names) == set()
    # The rule itself, without the weighing of rivals: the smaller topic takes a free head.
    from pipeline.label import choose

    monkeypatch.setattr(choose, "contested_separation", lambda *args: {})
    rl = [f"Reinforcement learning {i}" for i in range(17)] + [f"Image captioning {i}" for i in range(40)]
    rl[:3] = [f"{title} for robots" for title in rl[:3]]
    rl[9:12] = [f"{title} in games" for title in rl[9:12]]
    rl_rows = {0: np.arange(9), 1: np.arange(9, 17), 2: np.arange(17, 57)}
    names, _ = topic_names(namer_of(rl, n_phrases=2), rl_rows, lambda topic: f"Topic {topic}")
    assert names[0] == "Reinforcement learning"  # the larger topic chooses first
    assert names[1] == "Games, reinforcement learning"  # not "Reinforcement learning, games": that head is taken
    assert twins({0: "Agents", 1: "Agents, environments", 2: "Video", 3: "agent"}) == {0, 1, 3}  # folded heads
    assert twins({0: "Video", 1: "Video (4)", 2: "Video generation"}) == {0, 1}  # a number does not tell apart
    tokens = phrase_tokens(titles, [""] * len(titles))
    per_paper = np.repeat([0, 1, 2], [10, 8, 40])
    repeats = pile_faults(tokens, per_paper, {0: "Agents", 1: "Web tasks"}, {0: (5, "Agents"), 1: (5, "Agents")})
    assert repeats == {0: ["twin"], 1: []}  # a topic named by its group's name alone


def generic_pile() -> tuple[list[str], dict[int, np.ndarray]]:
    # "Optimization" is in every title of topic 0 and in 3 of the 10 of topics 1, 2 and 3: it tells
    # topic 0 apart by lift (about 9) but is written by a fifth of four topics; 8 of topic 0's
    # papers write "contrastive learning", which no other paper does.
    titles = [f"Optimization {i}" for i in range(2)]
    titles += [f"Optimization: contrastive learning {i}" for i in range(8)]
    for subject in ("Protein folding", "Image segmentation", "Quantum gravity"):
        titles += [f"{subject} optimization {i}" for i in range(3)] + [f"{subject} {i}" for i in range(7)]
    titles += [f"Weather forecasting {i}" for i in range(60)]
    rows_of = {topic: np.arange(10 * topic, 10 * topic + 10) for topic in range(4)} | {4: np.arange(40, 100)}
    return titles, rows_of


def test_a_word_many_topics_write_names_no_topic_alone():
    titles, rows_of = generic_pile()
    namer = namer_of(titles)
    names, _ = topic_names(namer, rows_of, lambda topic: f"Topic {topic}")
    assert names[0] == "Contrastive learning"  # not "Optimization", the best-scored phrase
    tokens = phrase_tokens(titles, [""] * len(titles))
    per_paper = np.concatenate([np.full(len(rows), topic) for topic, rows in rows_of.items()])
    assert generic_names(tokens, per_paper, {0: "Optimization", 1: "Protein folding", 4: "Weather"}) == {0}
    # Specific: only topic 2 writes "segmentation".
    assert generic_names(tokens, per_paper, {2: "Segmentation", 1: "Protein folding"}) == set()


def test_in_a_small_topic_one_paper_less_does_not_make_a_specific_phrase_lose_to_a_generic_word():
    # Topic 0 has 5 papers: all write "optimization" (generic: 3 of the 10 papers of three other topics
    # write it too), 3 write "contrastive learning" (no other paper does). 3 papers are 60% of the topic,
    # under 70% of what "optimization" covers (3.5 papers) by half a paper: chance at this size, so
    # the specific phrase names the topic (seed pages: "Loss" instead of "Contrastive learning").
    titles = [f"Optimization: contrastive learning {i}" for i in range(3)] + [f"Optimization {i}" for i in range(2)]
    for subject in ("Protein folding", "Image segmentation", "Quantum gravity"):
        titles += [f"{subject} optimization {i}" for i in range(3)] + [f"{subject} {i}" for i in range(7)]
    titles += [f"Weather forecasting {i}" for i in range(60)]
    rows_of = {0: np.arange(5)} | {topic: np.arange(10 * topic - 5, 10 * topic + 5) for topic in (1, 2, 3)}
    rows_of |= {4: np.arange(35, 95)}
    names, _ = topic_names(namer_of(titles), rows_of, lambda topic: f"Topic {topic}")
    assert names[0] == "Contrastive learning"
    # Two papers less is not chance: with only 2 of the 5 writing it, the broad word names the topic.
    titles[2] = "Optimization 2b"
    names, _ = topic_names(namer_of(titles), rows_of, lambda topic: f"Topic {topic}")
    assert names[0] != "Contrastive learning"


def test_a_name_nearer_another_topics_centroid_is_not_chosen_and_the_audit_ranks_it():
    # Topic 0's best-scored phrase is "sea ice" (every paper), then "polynyas" (6 of 10). By the
    # embedder, "sea ice" is close to topic 0's centroid (cosine 0.6) but closer to topic 1's (0.8),
    # what ocean waves are about; "polynyas" means topic 0.
    titles = [f"Sea ice: polynyas {i}" for i in range(6)] + [f"Sea ice {i}" for i in range(4)]
    titles += [f"Ocean waves {i}" for i in range(20)] + [f"Protein folding {i}" for i in range(20)]
    vocabulary = {"sea": [0.8, 0, 0, 0], "ice": [0, 0.6, 0, 0], "ocean": [1, 0, 0, 0], "polynya": [0, 1, 0, 0]}
    embed = words_embedder(vocabulary | {"protein": [0, 0, 1, 0]}, 4)
    centroids = {0: np.array([0.0, 1.0, 0.0, 0.0]), 1: np.array([1.0, 0.0, 0.0, 0.0]), 2: np.eye(4)[2]}
    rows_of = {0: np.arange(10), 1: np.arange(10, 30), 2: np.arange(30, 50)}
    blind, _ = topic_names(namer_of(titles), rows_of, str)
    assert blind[0] == "Sea ice"  # without the check, the best-scored phrase
    names, _ = topic_names(namer_of(titles, embed), rows_of, str, centroids)
    assert names[0] == "Sea ice, polynyas"  # the phrase that tells it apart comes with it: nearest its own
    assert centroid_ranks(embed, {0: "Sea ice", 1: "Ocean waves", 2: "Protein folding"}, centroids) == {
        0: 2, 1: 1, 2: 1,
    }  # fmt: skip
    tokens = phrase_tokens(titles, [""] * len(titles))
    table = pd.DataFrame({"topic": [0, 1, 2], "name": ["Sea ice", "Ocean waves", "Protein folding"]})
    audited = with_name_audit(table, tokens, np.repeat([0, 1, 2], [10, 20, 20]), {0: 2, 1: 1, 2: 1})
    assert audited["name_rank"].tolist() == [2.0, 1.0, 1.0]
    assert audited["name_faults"].tolist() == ["far", "", ""]


def _continuation_by_python_sort(tokens, phrase, tie=1):
    """The reference: every follower sorted in Python by (most uses, lower key), the first that qualifies.

    ``tie=-1``: ties to the higher key instead (what a wrong order would pick).
    """
    from pipeline.label.names import _abbreviates
    from pipeline.terms import ENGLISH_STOP_WORDS

    words, uses, keys, counts = followers(tokens, phrase)
    for key, count in sorted(zip(keys.tolist(), counts.tolist(), strict=True), key=lambda kc: (-kc[1], tie * kc[0])):
        word = str(tokens.keys[key])
        if word not in ENGLISH_STOP_WORDS and not _abbreviates(word, words):
            return word, count / uses
    return "", 0.0


def test_the_continuation_of_a_phrase_is_its_most_written_follower_ties_to_the_first_counted_word():
    """Many ties (a few words, short texts): the numpy ordering picks what a Python sort of every follower picks."""
    rng = np.random.default_rng(7)
    vocabulary = "graph neural network the of learning model data deep rl reinforcement agents".split()
    titles = [" ".join(rng.choice(vocabulary, size=4)) for _ in range(60)]
    abstracts = [" ".join(rng.choice(vocabulary, size=12)) for _ in range(60)]
    tokens = phrase_tokens(titles, abstracts)
    phrases = [*vocabulary, "graph neural", "deep learning", "reinforcement learning", "neural network model"]
    found = [continuation(tokens, phrase) for phrase in phrases]
    assert found == [_continuation_by_python_sort(tokens, phrase) for phrase in phrases]
    # Some phrases' most written followers tie: the other tie-break would pick another word there.
    assert found != [_continuation_by_python_sort(tokens, phrase, tie=-1) for phrase in phrases]


def test_fragments_are_worked_out_once_per_folded_phrase_whatever_the_order_of_the_questions():
    titles = [f"Multimodal large language models for {i}" for i in range(24)] + [
        f"Multimodal large vision {i}" for i in range(6)
    ] + [f"Remote sensing of {i}" for i in range(10)]  # fmt: skip
    phrases = ["multimodal large", "Multimodal Large", "multimodal large language models", "remote sensing",
               "Multimodal large language model", "large language", "sensing"]  # fmt: skip
    asked = phrase_tokens(titles, [""] * len(titles))
    answers = [is_fragment(asked, phrase) for phrase in phrases]
    for phrase, answer in zip(reversed(phrases), reversed(answers), strict=True):  # a fresh index, other order
        assert is_fragment(phrase_tokens(titles, [""] * len(titles)), phrase) == answer, phrase
        assert is_fragment(asked, phrase) == answer, phrase
    assert answers[:2] == [True, True] and answers[2:4] == [False, False]
    assert set(asked.fragments) == {("multimodal", "large"), ("multimodal", "large", "language", "model"),
                                    ("remote", "sensing"), ("large", "language"), ("sensing",)}  # fmt: skip
