"""Names from the authors' phrases: candidates, spelling, choice, siblings, groups, and the name audit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import LabelConfig
from pipeline.label import label_topics, phrase_index, stop_words
from pipeline.label.audit import audit_of_topics, name_audit, name_audit_metrics, papers_writing, texts_name_audit
from pipeline.label.choose import group_name, topic_names
from pipeline.label.naming import PhraseNamer
from pipeline.label.phrases import build_phrase_index, phrase_tokens
from pipeline.label.spelling import spell
from pipeline.schema import OUTLIER_NAME, PAPER_COLUMNS

STOP = stop_words(LabelConfig())


def index_of(titles: list[str], abstracts: list[str] | None = None, min_papers: int = 1):
    return build_phrase_index(phrase_tokens(titles, abstracts or [""] * len(titles)), STOP, min_papers)


def terms_of(index) -> set[str]:
    return {index.key_text(term) for term in range(index.papers.shape[1])}


def papers_of(titles: list[str], abstracts: list[str]) -> pd.DataFrame:
    blank = dict.fromkeys(PAPER_COLUMNS, "")
    rows = [
        blank | {"paper_id": f"p{i}", "title": t, "abstract": a}
        for i, (t, a) in enumerate(zip(titles, abstracts, strict=True))
    ]
    return pd.DataFrame(rows).astype("string")


def test_candidates_are_written_phrases_without_stop_words_at_their_ends():
    index = index_of(["We propose graph models. Neural nets for the Chain-of-Thought of LLMs", "Theory of mind"])
    terms = terms_of(index)
    assert {"graph", "graph model", "neural net", "chain-of-thought", "llm", "theory of mind"} <= terms
    assert "model neural" not in terms and "graph model neural" not in terms  # never across a full stop
    assert not any(term.split()[0] in STOP or term.split()[-1] in {"for", "of", "the", "we"} for term in terms)
    assert max(len(term.split()) for term in terms) <= 4


def test_phrases_are_spelled_as_the_texts_write_them():
    titles = ["LLMs for 3D scenes", "Bayesian LLMs", "Large language models", "large language models and llms"]
    titles += ["Image Super-Resolution", "Image super-resolution"]
    abstracts = ["Large language models reason in 3D.", "With a Bayesian prior.", "", "We study LLM agents.", "", ""]
    index = index_of(titles, abstracts)
    wanted = {index.key_text(term): term for term in range(index.papers.shape[1])}
    terms = ["llm", "3d", "bayesian", "large language model", "image super-resolution"]
    spelled = spell(index, [wanted[term] for term in terms])
    assert spelled[wanted["llm"]] == "LLMs"  # the acronym as written, most used form
    assert spelled[wanted["3d"]] == "3D"
    assert spelled[wanted["bayesian"]] == "Bayesian"  # never written in lowercase
    assert spelled[wanted["large language model"]] == "large language models"  # title case is no spelling
    assert spelled[wanted["image super-resolution"]] == "image super-resolution"


def topic_pile() -> tuple[list[str], list[str], np.ndarray]:
    """12 papers on LLM agents, 12 on protein folding, 12 on graph neural networks."""
    titles, abstracts = [], []
    for i in range(12):
        titles.append(f"Large language model agents for tool use {i}")
        abstracts.append("Large language models (LLMs) act as agents." + (" Tool calling helps." if i % 2 else ""))
    for i in range(12):
        titles.append(f"Protein folding with diffusion {i}")
        abstracts.append("We predict protein structures." + (" Molecular dynamics refines them." if i < 6 else ""))
    for i in range(12):
        titles.append(f"Graph neural networks for molecules {i}")
        abstracts.append("Message passing on graphs." + (" Molecular dynamics data." if i < 6 else ""))
    return titles, abstracts, np.repeat([0, 1, 2], 12)


def test_each_topic_is_named_by_its_best_written_phrase_grown_to_a_whole_phrase():
    titles, abstracts, topics = topic_pile()
    namer = PhraseNamer(index_of(titles, abstracts, min_papers=2), n_phrases=2)
    rows_of = {topic: np.flatnonzero(topics == topic) for topic in range(3)}
    names, chosen = topic_names(namer, rows_of, lambda topic: pytest.fail("no fallback needed"))
    assert names[0].startswith("Large language model")  # grown from "large language": never a fragment
    assert "LLM" not in names[0] and "llm" not in names[0].casefold()  # the first phrase's own abbreviation
    assert names[1].casefold().startswith("protein")
    assert names[2].casefold().startswith("graph neural network")
    assert all(chosen[topic].coverage == 1.0 and chosen[topic].lift >= 3 for topic in range(3))
    assert len(set(names.values())) == 3


def test_a_second_phrase_names_papers_the_first_does_not():
    titles = [f"Speech recognition {i}" for i in range(10)] + [f"Speaker diarization {i}" for i in range(6)]
    titles += [f"Image segmentation {i}" for i in range(16)]
    namer = PhraseNamer(index_of(titles, min_papers=2), n_phrases=2)
    rows_of = {0: np.arange(16), 1: np.arange(16, 32)}
    names, _ = topic_names(namer, rows_of, lambda topic: f"Topic {topic}")
    assert names[0] == "Speech recognition, speaker diarization"
    assert names[1] == "Image segmentation"  # nothing left to name: no second phrase
    one, _ = topic_names(PhraseNamer(namer.index, n_phrases=1), rows_of, lambda topic: f"Topic {topic}")
    assert one[0] == "Speech recognition"


def test_a_main_phrase_covering_a_fifth_of_the_topic_wins_over_a_sharper_rare_one(monkeypatch):
    # Topic 0: 5 of 20 papers write "sea ice" (10 of 200 others do too: lift ~4.6), 3 write
    # "polynyas" (no other paper does: lift ~30); the rest write what the whole pile writes.
    titles = [f"Sea ice {i}" for i in range(5)] + [f"Polynyas, ocean waves {i}" for i in range(3)]
    titles += [f"Ocean waves {i}" for i in range(12)]
    titles += [f"Sea ice and ocean waves {i}" for i in range(10)] + [f"Ocean waves {i}" for i in range(90)]
    titles += [f"Protein folding {i}" for i in range(100)]
    rows_of = {0: np.arange(20), 1: np.arange(20, 120), 2: np.arange(120, 220)}
    namer = PhraseNamer(index_of(titles, min_papers=2), n_phrases=1)
    monkeypatch.setattr("pipeline.label.phrases.LIFT_CAP", 1e9)
    monkeypatch.setattr("pipeline.label.naming.COVERAGE_FLOOR", 0.0)
    assert topic_names(namer, rows_of, str)[0][0] == "Polynyas"  # the best score: a name for 15% of the topic
    monkeypatch.setattr("pipeline.label.naming.COVERAGE_FLOOR", 0.2)
    names, chosen = topic_names(namer, rows_of, str)
    assert names[0] == "Sea ice" and chosen[0].coverage == 0.25 and chosen[0].lift >= 3


def test_the_phrase_that_means_what_the_papers_mean_wins_among_the_best_scored():
    titles = [f"Hate speech detection {i}" for i in range(10)] + [f"Toxic content moderation {i}" for i in range(10)]
    titles += [f"Galaxy surveys {i}" for i in range(40)]
    rows_of = {0: np.arange(20), 1: np.arange(20, 60)}
    index = index_of(titles, min_papers=2)
    topic_vector = np.array([1.0, 0.0, 0.0])
    meaning = {"hate speech detection": [0.2, 1.0, 0.0], "toxic content moderation": [1.0, 0.1, 0.0]}

    def embed(texts):
        return np.array([meaning.get(text, [0.0, 0.0, 1.0]) for text in texts])

    plain, _ = topic_names(PhraseNamer(index, n_phrases=1), rows_of, str)
    assert plain[0] == "Hate speech detection"  # equal coverage and lift: the tie goes by term order
    centroids = {0: topic_vector, 1: np.array([0.0, 0.0, 1.0])}
    weighed, _ = topic_names(PhraseNamer(index, n_phrases=1, embed=embed), rows_of, str, centroids)
    assert weighed[0] == "Toxic content moderation"  # its vector is the one near the topic's centroid
    assert weighed[1] == plain[1]


def test_a_second_phrase_is_never_a_form_of_the_first():
    titles = [f"Bias in hiring {i}" for i in range(10)] + [f"Biases of raters {i}" for i in range(10)]
    titles += [f"Quantum gravity {i}" for i in range(40)]
    namer = PhraseNamer(index_of(titles, min_papers=2), n_phrases=2)
    names, _ = topic_names(namer, {0: np.arange(20), 1: np.arange(20, 60)}, str)
    assert "bias" not in names[0].split(", ", 1)[-1].casefold() or ", " not in names[0]  # no "Biases, bias"


def test_siblings_with_the_same_best_phrase_each_get_the_phrase_that_separates_them():
    titles = [f"Reinforcement learning {i}" for i in range(9)] + [f"Reinforcement learning {i}" for i in range(8)]
    titles[:3] = [f"{title} for robots" for title in titles[:3]]
    titles[9:12] = [f"{title} in games" for title in titles[9:12]]
    titles += [f"Image captioning {i}" for i in range(40)]
    namer = PhraseNamer(index_of(titles, min_papers=2), n_phrases=1)
    rows_of = {0: np.arange(9), 1: np.arange(9, 17), 2: np.arange(17, 57)}
    names, _ = topic_names(namer, rows_of, lambda topic: f"Topic {topic}")
    # Both topics' best phrase is "Reinforcement learning": the topic it covers most (a tie: the larger)
    # keeps it, the other moves off it, not even keeping it with a second phrase (twins).
    assert (names[0], names[1]) == ("Reinforcement learning", "Games")
    assert names[2] == "Image captioning"


def test_generic_words_never_make_a_name_on_their_own():
    titles = [f"Real world time {i}" for i in range(10)] + [f"Deep research {i}" for i in range(10)]
    titles = [f"{title}: quantum error correction" for title in titles[:10]] + titles[10:]
    namer = PhraseNamer(index_of(titles, min_papers=2), n_phrases=1)
    names, _ = topic_names(namer, {0: np.arange(10), 1: np.arange(10, 20)}, lambda topic: f"Topic {topic}")
    assert names[0] == "Quantum error correction"
    assert names[1] == "Topic 1"  # only generic words: the keyword name's fallback, never "Deep research"


def test_a_group_is_named_by_a_phrase_its_topics_share_else_by_its_own_else_by_its_largest_topic(monkeypatch):
    titles, abstracts, topics = topic_pile()
    namer = PhraseNamer(index_of(titles, abstracts, min_papers=2), n_phrases=2)
    rows_of = {topic: np.flatnonzero(topics == topic) for topic in range(3)}
    _, chosen = topic_names(namer, rows_of, lambda topic: f"Topic {topic}")
    shared = group_name(namer, [1, 2], rows_of, chosen)
    assert namer.index.key_text(shared.terms[0]) == "molecular dynamics"  # half of each topic writes it
    own = group_name(namer, [0, 1], rows_of, chosen)  # nothing is common to topics 0 and 1
    assert own.coverage == 0.5 and own.terms[0] in {chosen[0].terms[0], chosen[1].terms[0]}
    monkeypatch.setattr("pipeline.label.choose.GROUP_MIN_COVERAGE", 0.9)  # no phrase covers the group
    rows_of[0] = rows_of[0][:11]
    assert group_name(namer, [0, 1], rows_of, chosen).terms == chosen[1].terms[:1]  # topic 1 is the larger


def test_label_topics_names_audits_and_keeps_the_outlier_name():
    titles, abstracts, topics = topic_pile()
    labels = topics.copy()
    labels[[5, 17]] = -1
    embeddings = np.eye(3)[topics] + 0.01
    result = label_topics(papers_of(titles, abstracts), embeddings, labels, embeddings[:, :2],
                          LabelConfig(reduce_outliers=False), None)  # fmt: skip
    table = result.topics.set_index("topic")
    assert table.loc[-1, "name"] == OUTLIER_NAME and np.isnan(table.loc[-1, "name_coverage"])
    assert (table.drop(-1)["name_coverage"] == 1.0).all() and (table.drop(-1)["name_lift"] >= 3).all()
    papers = papers_of(titles, abstracts)
    given = label_topics(papers, embeddings, labels, embeddings[:, :2], LabelConfig(reduce_outliers=False), None,
                         phrases=phrase_index(papers, LabelConfig()))  # fmt: skip
    assert given.topics.equals(result.topics)  # a cached phrase index names alike
    with pytest.raises(ValueError, match="phrase index"):
        label_topics(papers, embeddings, labels, embeddings[:, :2], LabelConfig(), None,
                     phrases=phrase_index(papers.iloc[:5], LabelConfig()))  # fmt: skip
    summary = audit_of_topics(result.topics)
    assert summary["name_coverage_mean"] == summary["name_coverage_min"] == 1.0
    assert [row["topic"] for row in summary["name_audit"]] == [0, 1, 2]


def test_the_audit_reads_any_name_against_the_texts():
    titles, abstracts, topics = topic_pile()
    tokens = phrase_tokens(titles, abstracts)
    assert papers_writing(tokens, "Molecular dynamics").tolist() == [False] * 12 + ([True] * 6 + [False] * 6) * 2
    assert not papers_writing(tokens, "dynamics molecular").any()  # the words in their order only
    audit = name_audit(tokens, topics, {0: "Tool calling, agents", 1: "Molecular dynamics", 2: "Graph learning"})
    assert audit[0] == (0.5, 12.5)  # 6 of 12; (6/12) / ((0 + 1) / (24 + 1))
    assert audit[1][0] == 0.5 and audit[1][1] == pytest.approx(0.5 / (7 / 25), abs=0.01)
    assert audit[2] == (0.0, 0.0)  # a name no paper writes speaks for none of them
    table = pd.DataFrame({"topic": [0, 1, 2], "name": ["Tool calling", "Protein folding", "Graph neural networks"]})
    assert texts_name_audit(papers_of(titles, abstracts), table, topics)["name_coverage_min"] == 0.5


def test_the_run_audit_reads_the_stored_columns_or_else_the_texts():
    titles, abstracts, topics = topic_pile()
    papers = papers_of(titles, abstracts)
    assignments = pd.DataFrame({"paper_id": papers["paper_id"], "topic": topics})
    table = pd.DataFrame({"topic": [0, 1, 2], "name": ["Tool calling", "Protein folding", "Graph neural networks"]})
    from_texts = name_audit_metrics(papers, assignments, table)
    assert from_texts["name_coverage_mean"] == pytest.approx(2.5 / 3, abs=1e-4)
    assert from_texts["name_low_coverage_share"] == 0.0 and len(from_texts["name_audit"]) == 3
    stored = table.assign(name_coverage=[0.1, 0.2, 0.3], name_lift=[4.0, 5.0, 6.0], name_faults=["", "fragment", ""])
    audit = name_audit_metrics(papers, assignments, stored)  # the columns win: they may hold an LLM's names
    assert audit["name_coverage_min"] == 0.1 and audit["name_low_coverage_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert audit["name_lift_median"] == 5.0 and audit["name_faults"] == 1
    assert [row["faults"] for row in audit["name_audit"]] == ["", "fragment", ""]


def test_name_faults_find_what_a_researcher_would_never_write():
    from pipeline.label.audit import name_faults

    tokens = phrase_tokens(
        ["LLM agents for code", "LLMs as judges", "Graph neural networks", "Finite groups"],
        ["We prove that LLM agents fix bugs.", "LLM judges agree.", "Graph neural networks learn.",
         "For finite groups we prove a bound."],
    )  # fmt: skip
    assert name_faults(tokens, "LLM agents, graph neural networks") == []
    assert name_faults(tokens, "Agents code") == ["unwritten"]  # the words, but never in this order
    assert name_faults(tokens, "Groups we prove") == ["fragment"]  # written, but no noun phrase
    assert name_faults(tokens, "Finite groups, for") == ["fragment"]
    assert name_faults(tokens, "Llm agents") == ["lowercased acronym"]  # "LLM", as the texts write it
    assert name_faults(tokens, "Graph neural networks") == []  # a capital at the start is how a name begins
    assert name_faults(tokens, "Agents, llm judges") == ["lowercased acronym"]
    assert name_faults(tokens, "Graph neural networks, llm") == ["lowercased acronym"]
    generic = phrase_tokens(["Human research in the real world"], ["Human research is a study."])
    assert name_faults(generic, "Human research") == ["generic only"]
    assert name_faults(generic, "Human, research") == ["generic only"]


def test_the_phrase_index_kept_between_runs_is_the_index_built(tmp_path):
    from pipeline.config import RunConfig
    from pipeline.label.cache import cached_phrase_index
    from pipeline.label.phrases import PhraseIndexArrays
    from pipeline.memo import MemoStore

    titles = ["Graph neural networks for molecules", "Large language models: a survey", "KV cache compression"]
    abstracts = ["We study graph neural networks.", "Large language models write text.", "The KV cache grows."]
    papers = papers_of(titles * 2, abstracts * 2)
    built = phrase_index(papers, LabelConfig())
    restored = PhraseIndexArrays().decode(PhraseIndexArrays().encode(built))
    assert terms_of(restored) == terms_of(built) and len(terms_of(built)) > 3
    assert (restored.papers != built.papers).nnz == 0 and (restored.titles != built.titles).nnz == 0
    assert restored.text.surfaces.tolist() == built.text.surfaces.tolist()
    # The word order kept with it (so a rerun sorts no tokens) is the stable sort of the words, and
    # every word's positions read from it are those of the index built.
    words = built.text.words
    np.testing.assert_array_equal(restored.text.by_word, np.argsort(words, kind="stable"))
    for key in range(-1, len(built.keys)):
        np.testing.assert_array_equal(restored.text.positions(key), np.flatnonzero(words == key))
        np.testing.assert_array_equal(built.text.positions(key), np.flatnonzero(words == key))
    damaged = PhraseIndexArrays().encode(built) | {"by_word": np.arange(3, dtype=np.int64)}
    with pytest.raises(ValueError, match="word order"):
        PhraseIndexArrays().decode(damaged)
    config = RunConfig(name="t", inputs=[{"path": "x"}])
    cache = MemoStore(tmp_path)
    first = cached_phrase_index(cache, papers, config)
    again = cached_phrase_index(cache, papers, config)  # read back, not built
    assert terms_of(again) == terms_of(first)
    other = cached_phrase_index(cache, papers_of(titles, abstracts), config)
    assert other.papers.shape[0] == 3  # other papers, another index


def test_a_large_group_may_be_named_by_the_phrase_its_topics_share_though_the_rest_write_it_too(monkeypatch):
    # A group of 12 papers in 100 (two topics of 6): 9 write "language models", as do 24 of the other 88
    # (lift ~2.7, under MIN_LIFT, but a third of the ~8.3 a group this size can reach); 3 write "responses".
    titles = [f"Language models {i}" for i in range(9)] + [f"Responses {i}" for i in range(3)]
    titles += [f"Language models {i}" for i in range(24)] + [f"Sorting networks {i}" for i in range(64)]
    rows_of = {0: np.array([0, 1, 2, 3, 4, 9]), 1: np.array([5, 6, 7, 8, 10, 11]), 2: np.arange(12, 100)}
    namer = PhraseNamer(index_of(titles, min_papers=2), n_phrases=1)
    _, chosen = topic_names(namer, rows_of, str)
    monkeypatch.setattr("pipeline.label.choose.GROUP_LIFT_SHARE", 0.5)
    assert namer.index.key_text(group_name(namer, [0, 1], rows_of, chosen).terms[0]) != "language model"
    monkeypatch.setattr("pipeline.label.choose.GROUP_LIFT_SHARE", 0.3)
    assert namer.index.key_text(group_name(namer, [0, 1], rows_of, chosen).terms[0]) == "language model"
