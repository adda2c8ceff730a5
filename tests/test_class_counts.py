"""Term counts per topic counted in parts and summed (pipeline.label.class_counts): the keywords of one count."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipeline.config import LabelConfig
from pipeline.engine import LocalEngine
from pipeline.label.class_counts import (
    ClassCountsArrays,
    class_counts_of,
    class_keywords,
    counted_in_parts,
    keywords_of,
    summed,
)
from pipeline.label.keywords import ctfidf_keywords, renumber_by_size, stop_words
from pipeline.label.sample import stratified_rows
from pipeline.schema import PAPER_COLUMNS
from pipeline.terms import term_counts, tokenize_texts
from tests.test_label_update import corpus

CONFIG = LabelConfig(n_keywords=8)


def papers_frame(titles: list[str], abstracts: list[str]) -> pd.DataFrame:
    n = len(titles)
    return pd.DataFrame({column: [""] * n for column in PAPER_COLUMNS}).assign(
        paper_id=[f"p{i}" for i in range(n)], title=titles, abstract=abstracts
    )


def texts_and_topics(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    titles, abstracts, topics = corpus(n, seed)
    # Outliers are a class of their own, as c-TF-IDF weighs them.
    topics = np.where(np.arange(n) % 11 == 0, -1, topics)
    return [f"{title}. {abstract}" for title, abstract in zip(titles, abstracts, strict=True)], topics


def test_parts_summed_equal_one_count_over_all_papers():
    texts, topics = texts_and_topics(300, seed=1)
    whole = class_counts_of(term_counts(tokenize_texts(texts), [], 2), topics, np.unique(topics))
    bounds = [0, 17, 120, 121, 260, 300]  # uneven parts, one of a single paper
    parts = [
        class_counts_of(term_counts(tokenize_texts(texts[a:b]), [], 2), topics[a:b], np.unique(topics))
        for a, b in itertools.pairwise(bounds)
    ]
    # Parts hold words the others lack ("study 17"...): each numbers its terms its own way.
    assert len({len(part.vocabulary) for part in parts}) > 1
    total = summed(parts)
    assert total.vocabulary.tolist() == whole.vocabulary.tolist()
    assert [block.tolist() for block in total.ngrams] == [block.tolist() for block in whole.ngrams]
    assert (total.counts != whole.counts).nnz == 0 and (total.holding != whole.holding).nnz == 0
    assert total.sizes.tolist() == whole.sizes.tolist() == np.bincount(topics + 1).tolist()
    # The order of the parts does not matter: sums of integers.
    again = summed(parts[::-1])
    assert (again.counts != total.counts).nnz == 0 and again.vocabulary.tolist() == total.vocabulary.tolist()


def test_parts_with_no_terms_or_trigrams_sum_as_one_count():
    # Parts are merged one into the next: a part with no terms at all (only stop words), a class
    # only one part has, and trigram blocks must all land where one count over every paper puts them.
    texts, topics = texts_and_topics(160, seed=4)
    texts[40:50] = ["the of and"] * 10
    topics[150:] = 99  # a class only the last part holds
    stops = stop_words(CONFIG)
    classes = np.unique(topics)
    whole = class_counts_of(term_counts(tokenize_texts(texts), stops, 3), topics, classes)
    bounds = [0, 40, 50, 150, 160]
    parts = [class_counts_of(term_counts(tokenize_texts(texts[a:b]), stops, 3), topics[a:b], classes)
             for a, b in itertools.pairwise(bounds)]  # fmt: skip
    assert len(parts[1].vocabulary) == 0 and parts[1].counts.nnz == 0
    for order in (parts, parts[::-1], [parts[1], parts[3], parts[0], parts[2]]):
        total = summed(order)
        assert total.vocabulary.tolist() == whole.vocabulary.tolist()
        assert [block.tolist() for block in total.ngrams] == [block.tolist() for block in whole.ngrams]
        assert len(total.ngrams[2]) > 0
        assert np.array_equal(total.counts.indptr, whole.counts.indptr)
        assert np.array_equal(total.counts.indices, whole.counts.indices)
        assert np.array_equal(total.counts.data, whole.counts.data)
        assert np.array_equal(total.holding.data, whole.holding.data)


def test_keywords_from_summed_parts_are_those_of_the_full_path():
    texts, topics = texts_and_topics(400, seed=2)
    counts = term_counts(tokenize_texts(texts), stop_words(CONFIG), CONFIG.ngram_max)
    renumbered, full, _ = ctfidf_keywords(counts, topics, CONFIG)
    total, n_parts = counted_in_parts(texts, topics, CONFIG, LocalEngine(), part_papers=90)
    assert n_parts == 5
    by_class = class_keywords(total, CONFIG)
    topic_of = dict(zip(topics.tolist(), renumbered.tolist(), strict=True))
    assert {topic_of[label]: words for label, words in by_class.items()} == full
    assert any(len(words) >= 3 for words in full.values())


def test_a_part_counted_in_blocks_has_the_sums_of_one_count():
    from pipeline.label.class_counts import count_part

    texts, topics = texts_and_topics(300, seed=6)
    common = {"classes": np.unique(topics), "stop_words": stop_words(CONFIG), "ngram_max": CONFIG.ngram_max}
    whole = count_part((texts, topics), **common, block=len(texts))
    blocks = count_part((texts, topics), **common, block=37)  # 9 blocks, the last short
    assert blocks.vocabulary.tolist() == whole.vocabulary.tolist()
    assert [block.tolist() for block in blocks.ngrams] == [block.tolist() for block in whole.ngrams]
    assert (blocks.counts != whole.counts).nnz == 0 and (blocks.holding != whole.holding).nnz == 0
    assert blocks.sizes.tolist() == whole.sizes.tolist() and whole.counts.nnz > 500


class TwoWorkers:
    """An engine of two workers in threads: a part waits until the other worker has one too (a barrier)."""

    n_workers = 2

    def __init__(self) -> None:
        import threading

        self.both_busy = threading.Barrier(2, timeout=20)
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.parts = 0
        self.released_after: int | None = None

    def map(self, fn, items, *, timeout_s, common=None):
        with self.lock:
            self.running += 1
            self.parts += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.parts <= 2:  # the first two parts meet: both workers count from the start
                self.both_busy.wait()
            return LocalEngine().map(fn, items, timeout_s=timeout_s, common=common)
        finally:
            with self.lock:
                self.running -= 1

    def release(self) -> None:
        self.released_after = self.parts


def test_parts_are_counted_one_per_worker_at_a_time_and_sum_as_in_one_process():
    texts, topics = texts_and_topics(400, seed=4)
    engine = TwoWorkers()
    # The first two parts wait for each other: counted one after the other, the barrier would time out.
    total, n_parts = counted_in_parts(texts, topics, CONFIG, engine, part_papers=60)
    alone, _ = counted_in_parts(texts, topics, CONFIG, LocalEngine(), part_papers=60)
    assert n_parts == engine.parts == 7
    assert engine.most_at_once == 2  # one part per worker, never a third in flight
    assert engine.released_after == 7  # the workers let go once the last part was in
    assert total.vocabulary.tolist() == alone.vocabulary.tolist()
    assert (total.counts != alone.counts).nnz == 0 and (total.holding != alone.holding).nnz == 0


def test_class_counts_survive_the_store_codec():
    texts, topics = texts_and_topics(120, seed=3)
    total, _ = counted_in_parts(texts, topics, CONFIG, LocalEngine(), part_papers=50)
    codec = ClassCountsArrays()
    back = codec.decode(codec.encode(total))
    assert back.vocabulary.tolist() == total.vocabulary.tolist() and back.classes.tolist() == total.classes.tolist()
    assert (back.counts != total.counts).nnz == 0 and (back.holding != total.holding).nnz == 0
    assert class_keywords(back, CONFIG) == class_keywords(total, CONFIG)


def test_parts_of_other_classes_or_topics_outside_the_classes_are_refused():
    texts, topics = texts_and_topics(60, seed=4)
    a = class_counts_of(term_counts(tokenize_texts(texts[:30]), [], 1), topics[:30], np.array([-1, 0, 1, 2]))
    b = class_counts_of(term_counts(tokenize_texts(texts[30:]), [], 1), topics[30:], np.array([-1, 0, 1, 2, 3]))
    with pytest.raises(ValueError, match="different classes"):
        summed([a, b])
    with pytest.raises(ValueError, match="not among the classes"):
        class_counts_of(term_counts(tokenize_texts(texts), [], 1), topics, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="one topic each"):
        counted_in_parts(texts, topics[:-1], CONFIG, LocalEngine())


def test_a_sample_named_with_whole_counts_gets_the_keywords_of_all_papers(monkeypatch):
    """label_topics on a sample with the pile's class counts: keywords of all papers, per the sample's topic ids."""
    from pipeline.label import label_topics

    titles, abstracts, topics = corpus(500, seed=5)
    n = len(titles)
    papers = papers_frame(titles, abstracts)
    texts = [f"{t}. {a}" for t, a in zip(titles, abstracts, strict=True)]
    rng = np.random.default_rng(0)
    embeddings = np.eye(3)[topics] + rng.normal(0, 0.05, (n, 3))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    config = CONFIG.model_copy(update={"reduce_outliers": False, "n_topics": 3})
    total, _ = counted_in_parts(texts, topics, config, LocalEngine(), part_papers=200)
    monkeypatch.setattr("pipeline.label.sample.MIN_PER_TOPIC", 5)
    rows = stratified_rows(topics, 60, seed=1)
    assert 50 < len(rows) < 70
    result = label_topics(
        papers.iloc[rows].reset_index(drop=True), embeddings[rows], topics[rows], np.zeros((len(rows), 2)), config,
        None, class_keywords=keywords_of(total, config),
    )  # fmt: skip
    topic_of = dict(zip(topics[rows].tolist(), renumber_by_size(topics[rows]).tolist(), strict=True))
    table = result.topics.set_index("topic")
    got = {label: list(zip(table.at[topic, "keywords"], table.at[topic, "keyword_weights"], strict=True))
           for label, topic in topic_of.items()}  # fmt: skip
    assert got == class_keywords(total, config)
    # The sample's own counts weigh the words otherwise: the whole pile's counts are what was used.
    alone, _ = counted_in_parts([texts[row] for row in rows.tolist()], topics[rows], config, LocalEngine())
    assert class_keywords(alone, config) != got


def test_class_counts_of_other_clusters_are_refused():
    from pipeline.label import label_topics

    titles, abstracts, topics = corpus(40, seed=6)
    texts = [f"{t}. {a}" for t, a in zip(titles, abstracts, strict=True)]
    total, _ = counted_in_parts(texts, topics, CONFIG, LocalEngine())
    with pytest.raises(ValueError, match="do not cover the sample's clusters"):
        label_topics(papers_frame(titles, abstracts), np.eye(3)[topics], topics + 5, np.zeros((40, 2)),
                     CONFIG.model_copy(update={"reduce_outliers": False}), None,
                     class_keywords=keywords_of(total, CONFIG))  # fmt: skip
