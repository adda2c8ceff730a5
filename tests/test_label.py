"""Label stage: keywords without boilerplate, readable unique names, safe slugs, ranked papers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from pipeline.config import LabelConfig
from pipeline.label import ABSTRACT_BOILERPLATE, label_topics, slugify, stop_words, topic_name
from pipeline.label.names import complete_phrase, spell_phrase
from pipeline.schema import OUTLIER_NAME, PAPER_COLUMNS
from pipeline.terms import phrase_followers, phrase_spellings, token_stream, tokenize_texts

GRAPH = (
    "We propose a novel graph neural network for message passing on molecular graphs with graph neural network layers."
)
SPEECH = "This paper shows speech recognition results with acoustic models for low resource speech recognition."


def toy_papers(texts: list[str]) -> pd.DataFrame:
    blank = dict.fromkeys(PAPER_COLUMNS, "")
    rows = [
        blank | {"paper_id": f"p{i}", "title": " ".join(t.split()[4:8]), "abstract": t} for i, t in enumerate(texts)
    ]
    return pd.DataFrame(rows).astype("string")


def test_topics_get_keywords_without_stop_words_and_ranked_papers():
    texts = [GRAPH + f" variant {i}" for i in range(6)] + [SPEECH + f" variant {i}" for i in range(5)]
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([np.tile([1.0, 0.0], (6, 1)), np.tile([0.0, 1.0], (5, 1))])
    embeddings = embeddings + 0.01 * rng.normal(size=embeddings.shape)
    labels = np.array([1] * 6 + [0] * 5)  # BERTopic renumbers: the larger cluster becomes topic 0
    result = label_topics(toy_papers(texts), embeddings, labels, embeddings, LabelConfig(representation="none"), None)
    topics = result.topics.set_index("topic")
    assert topics.loc[0, "size"] == 6 and topics.loc[1, "size"] == 5
    assert "graph neural" in topics.loc[0, "keywords"]
    assert any("speech" in word for word in topics.loc[1, "keywords"])
    banned = set(stop_words(LabelConfig())) | ABSTRACT_BOILERPLATE
    for words in topics["keywords"]:
        assert not {token for word in words for token in word.split()} & banned
    assert "neural network" in topics.loc[0, "name"].casefold()
    assert not set(topics.loc[0, "name"].casefold().replace(",", "").split()) & ENGLISH_STOP_WORDS
    assert topics["name"].is_unique
    assignments = result.assignments
    assert assignments["topic"].tolist() == [0] * 6 + [1] * 5
    for topic, row in topics.iterrows():
        members = assignments[assignments["topic"] == topic]
        best = members.sort_values("score", ascending=False)["paper_id"].tolist()
        assert row["representative_ids"] == best


def test_one_paper_still_gets_a_named_topic():
    papers = toy_papers([GRAPH])
    result = label_topics(
        papers, np.ones((1, 4)), np.array([0]), np.zeros((1, 2)), LabelConfig(representation="none"), None
    )
    assert result.topics["size"].tolist() == [1]
    assert result.topics["name"].iloc[0] not in ("", "Topic 0")


def test_outliers_are_kept_and_named():
    texts = [GRAPH] * 3 + [SPEECH] * 3
    embeddings = np.eye(6)
    result = label_topics(toy_papers(texts), embeddings, np.array([0, 0, 0, -1, -1, -1]), embeddings[:, :2],
                          LabelConfig(representation="none"), None)  # fmt: skip
    outliers = result.topics.set_index("topic").loc[-1]
    assert outliers["size"] == 3 and outliers["slug"] == "outliers"
    assert outliers["name"] == outliers["coarse_name"] == OUTLIER_NAME == "Unassigned papers (outliers)"


def followers_in(text: str):
    """complete_phrase's followers, as the label stage finds them in one text."""
    tokens = tokenize_texts([text])
    return lambda phrase: phrase_followers(tokens, np.array([0]), phrase.split())


def test_name_prefers_phrases_and_completes_them_from_the_text():
    text = "large language models are large language models; graph neural networks"
    assert complete_phrase("large language", followers_in(text)("large language")) == "large language models"
    ode = followers_in("graph neural networks and graph neural ode")
    assert ode("graph neural") == ["networks", "ode"]
    assert complete_phrase("graph neural", ode("graph neural")) == "graph neural"  # no majority
    stop = followers_in("neural network for x, neural network for y")
    assert complete_phrase("neural network", stop("neural network")) == "neural network"  # stop words never end a name
    rl = followers_in("reinforcement learning (RL) agents; deep reinforcement learning rl policies")
    assert complete_phrase("reinforcement learning", rl("reinforcement learning")) == "reinforcement learning"
    mllm = followers_in("multimodal large language mllms and multimodal large language mllms")
    phrase = "multimodal large language"
    assert complete_phrase(phrase, mllm(phrase)) == phrase
    # A short word that merely shares a letter pattern with the phrase still completes it.
    od = followers_in("object detection model and object detection model")
    assert complete_phrase("object detection", od("object detection")) == "object detection model"
    # Nor a word the phrase holds, which is the next sentence's start more often than not.
    rppg = followers_in("remote photoplethysmography. remote sensing; remote photoplethysmography remote heart")
    assert rppg("remote photoplethysmography") == ["remote", "remote"]
    assert complete_phrase("remote photoplethysmography", rppg("remote photoplethysmography")) == (
        "remote photoplethysmography"
    )
    complete = followers_in(text)
    name = topic_name(["vision", "large language", "language", "visual"], 2, lambda p: complete_phrase(p, complete(p)))
    assert name == "Large language models, vision"
    assert len(name.split()) <= 5


def test_key_phrases_get_back_the_stop_word_their_texts_write():
    texts = ["chain of thought prompting helps", "a chain of thought is long", "chain of thought; chain thought"]
    tokens = tokenize_texts(texts)
    rows = np.arange(len(texts))
    spellings = phrase_spellings(tokens, rows, ["chain", "thought"])
    assert spellings == {"chain thought": 1, "chain of thought": 3}
    assert spell_phrase("chain thought", spellings) == "chain of thought"
    # Written as found more often, or the word between is no stop word, or one use only: kept as it is.
    assert spell_phrase("chain thought", {"chain thought": 5, "chain of thought": 3}) == "chain thought"
    assert spell_phrase("graph networks", {"graph networks": 0, "graph neural networks": 9}) == "graph networks"
    assert spell_phrase("chain thought", {"chain thought": 0, "chain of thought": 1}) == "chain thought"
    # Uses never span two papers.
    across = tokenize_texts(["a long chain", "of thought"])
    assert phrase_spellings(across, np.arange(2), ["chain", "thought"]) == {"chain thought": 0}


def test_a_name_never_ends_a_phrase_with_its_own_abbreviation():
    # Key phrases merge ("graph neural networks" + "networks gnns"); the merged phrase drops the abbreviation.
    name = topic_name(["graph neural networks", "networks gnns", "node"], 2)
    assert name == "Graph neural networks, node"
    assert topic_name(["retrieval augmented generation rag", "sql"], 2) == "Retrieval augmented generation, sql"
    assert topic_name(["speech recognition asr", "whisper"], 2) == "Speech recognition, whisper"
    assert topic_name(["mixture of experts moe", "routing"], 2) == "Mixture of experts, routing"
    # Abbreviations that take more than initials: ViT, SAE, ReID.
    assert topic_name(["vision transformers vits", "domain"], 2) == "Vision transformers, domain"
    assert topic_name(["vision transformers", "vit", "domain"], 2) == "Vision transformers, domain"
    assert topic_name(["sparse autoencoders saes", "steering"], 2) == "Sparse autoencoders, steering"
    assert topic_name(["person re identification reid", "pedestrian"], 2) == "Person re identification, pedestrian"
    # Real words that follow a phrase stay, even when their letters are in it.
    assert topic_name(["graph neural networks", "molecules"], 2) == "Graph neural networks, molecules"
    assert topic_name(["large language models", "agents"], 2) == "Large language models, agents"
    assert topic_name(["object detection model", "yolo"], 2) == "Object detection model, yolo"


def test_phrase_followers_stay_within_a_paper():
    tokens = tokenize_texts(["about large language", "models are large language models"])
    assert phrase_followers(tokens, np.array([0, 1]), ["large", "language"]) == ["models"]
    assert phrase_followers(tokens, np.array([0]), ["large", "language"]) == []
    assert phrase_followers(tokens, np.array([1]), ["unknown", "words"]) == []
    # A stream built once for many phrases gives the same answers.
    rows = np.array([1, 0])
    stream = token_stream(tokens, rows)
    for phrase in (["large", "language"], ["language"], ["models", "are"]):
        assert phrase_followers(tokens, rows, phrase, stream) == phrase_followers(tokens, rows, phrase)
        assert phrase_spellings(tokens, rows, phrase, stream) == phrase_spellings(tokens, rows, phrase)


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Graph neural networks, permutation", "graph-neural-networks-permutation"), ("../../etc/passwd", "etc-passwd"),
     ("<script>", "script"), ("???", "topic")],
)  # fmt: skip
def test_slugs_are_safe_file_names(name, slug):
    assert slugify(name) == slug


def test_name_merges_overlapping_phrases_and_skips_repeats():
    assert topic_name(["bose einstein", "einstein condensates", "vortex"], 2) == "Bose einstein condensates, vortex"
    assert topic_name(["carbon nanotubes", "walled carbon nanotubes", "graphene"], 2) == "Carbon nanotubes, graphene"
    assert topic_name(["graph neural network", "graphs", "molecules"], 2) == "Graph neural network, molecules"


def test_two_letter_words_come_last_in_names_but_greek_letters():
    assert topic_name(["super resolution", "lr", "perceptual"], 2) == "Super resolution, perceptual"
    assert topic_name(["cross section", "pi", "decay"], 2) == "Cross section, pi"  # the pion
    assert topic_name(["ai", "ml"], 2) == "Ai, ml"  # last, not never


def test_phrases_merge_only_into_a_phrase_the_texts_write():
    def written_in(text: str):
        followers = followers_in(text)
        return lambda phrase: phrase.split()[-1] in followers(" ".join(phrase.split()[:-1]))

    long_context = written_in("long context models use in-context learning; long context windows, in context learning")
    keywords = ["long context", "context learning", "windows"]
    assert topic_name(keywords, 2) == "Long context learning, windows"  # what merging on overlap alone writes
    assert topic_name(keywords, 2, None, long_context) == "Long context, windows"
    condensates = written_in("a bose einstein condensate; bose einstein condensates with a vortex")
    assert topic_name(["bose einstein", "einstein condensates", "vortex"], 2, None, condensates) == (
        "Bose einstein condensates, vortex"
    )


@pytest.mark.parametrize("representation", ["none", "mmr"])
def test_a_word_from_too_few_papers_is_never_a_keyword(representation):
    # "zanzibarite" fills one paper of the graph topic: c-TF-IDF ranks it first unless the floor keeps it out.
    texts = [GRAPH + f" variant {i}" for i in range(6)] + [SPEECH + f" variant {i}" for i in range(5)]
    texts[0] += " zanzibarite" * 40
    embeddings = np.concatenate([np.tile([1.0, 0.0], (6, 1)), np.tile([0.0, 1.0], (5, 1))])
    labels = np.array([0] * 6 + [1] * 5)

    def keywords(min_papers):
        config = LabelConfig(representation=representation, keyword_min_papers=min_papers, n_keywords=5)
        embedder = (lambda words: np.ones((len(words), 2))) if representation == "mmr" else None
        topics = label_topics(toy_papers(texts), embeddings, labels, embeddings, config, embedder).topics
        return [word for words in topics["keywords"] for word in words]

    assert "zanzibarite" in keywords(1)
    assert "zanzibarite" not in keywords(2)
    assert "graph neural" in keywords(2)  # a word in every paper of its topic stays


def test_a_word_few_papers_of_its_topic_use_is_never_its_keyword():
    # 10 graph papers, one of which repeats "zanzibarite": c-TF-IDF ranks it first, yet 1 paper in 10
    # is not what the topic is about. "hypergraph" is in 3 of the 10.
    texts = [GRAPH + f" variant {i}" for i in range(10)] + [SPEECH + f" variant {i}" for i in range(8)]
    texts[0] += " zanzibarite" * 40
    for index in (1, 2, 3):
        texts[index] += " hypergraph" * 2
    embeddings = np.concatenate([np.tile([1.0, 0.0], (10, 1)), np.tile([0.0, 1.0], (8, 1))])
    labels = np.array([0] * 10 + [1] * 8)

    def keywords(min_share):
        config = LabelConfig(keyword_min_share=min_share, n_keywords=30)
        topics = label_topics(toy_papers(texts), embeddings, labels, embeddings, config, None).topics
        return list(topics.set_index("topic").loc[0, "keywords"])

    without_bar = keywords(0.0)
    assert without_bar[0] == "zanzibarite" and "hypergraph" in without_bar
    assert "zanzibarite" in keywords(0.1)  # 1 of 10 papers is at the bar: kept
    assert "zanzibarite" not in keywords(0.15)
    assert "hypergraph" in keywords(0.3)  # 3 of 10: at the bar, kept
    with_bar = keywords(0.35)
    assert "zanzibarite" not in with_bar and "hypergraph" not in with_bar
    assert "graph neural" in with_bar  # in every paper of its topic


def test_class_weights_zero_exactly_the_terms_below_the_share_of_their_topic():
    from pipeline.label import class_weights, term_counts_for

    rng = np.random.default_rng(3)
    words = [f"w{chr(97 + i)}" for i in range(12)]
    texts = [" ".join(rng.choice(words, size=rng.integers(3, 15))) for _ in range(60)]
    labels = rng.integers(-1, 4, size=60)
    counts = term_counts_for(tokenize_texts(texts), LabelConfig(ngram_max=1))
    plain = class_weights(counts, labels).toarray()
    barred = class_weights(counts, labels, min_topic_share=0.3).toarray()
    present = counts.matrix.toarray() > 0
    for row, topic in enumerate(np.unique(labels)):
        share = present[labels == topic].mean(axis=0)
        expected = np.where(share >= 0.3, plain[row], 0.0)
        assert barred[row] == pytest.approx(expected)
    assert (barred == 0).sum() > (plain == 0).sum()  # the bar removed something


def test_keyword_share_is_auto_on_the_ctfidf_route_only():
    from pipeline.label import keyword_min_share
    from pipeline.label.keywords import AUTO_KEYWORD_MIN_SHARE

    assert keyword_min_share(LabelConfig()) == AUTO_KEYWORD_MIN_SHARE > 0
    assert keyword_min_share(LabelConfig(keyword_min_share=0.25)) == 0.25
    assert keyword_min_share(LabelConfig(representation="mmr")) == 0.0  # BERTopic's route cannot count papers


def test_keyword_floor_is_auto_by_corpus_size():
    from pipeline.label import keyword_min_papers

    assert keyword_min_papers(LabelConfig(), 64) == 1  # a small pile keeps every word
    assert keyword_min_papers(LabelConfig(), 75_000) == 5
    assert keyword_min_papers(LabelConfig(keyword_min_papers=2), 75_000) == 2
