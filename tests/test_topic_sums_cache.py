"""Per-topic term sums kept between runs (``label.cache.cached_topic_sums``): summed once, keyed by their inputs."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import LabelConfig
from pipeline.label import class_counts, term_counts_for
from pipeline.label.cache import cached_topic_sums
from pipeline.memo import MemoStore
from pipeline.terms import tokenize_texts

TEXTS = [
    "Graph neural networks pass messages between nodes of a graph.",
    "Message passing graph networks learn node embeddings.",
    "Speech recognition turns spoken audio into written text.",
    "Acoustic encoders for speech recognition of noisy audio.",
    "Protein folding predicts structures from amino acid sequences.",
    "Amino acid sequences fold into protein structures.",
]


def same_sums(found, expected) -> bool:
    return (
        np.array_equal(found[0], expected[0])
        and all((a != b).nnz == 0 and a.shape == b.shape for a, b in zip(found[1:], expected[1:], strict=True))
        and all(np.array_equal(a.indices, b.indices) for a, b in zip(found[1:], expected[1:], strict=True))
    )


@pytest.fixture
def counts():
    return term_counts_for(tokenize_texts(TEXTS), LabelConfig())


def counting(monkeypatch) -> list[int]:
    """Count the calls of class_sums (the sums the cache saves) while still computing them."""
    calls = []
    real = class_counts.class_sums

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(class_counts, "class_sums", counted)
    return calls


def test_topic_sums_are_summed_once_and_equal_the_sums(tmp_path, counts, monkeypatch):
    calls = counting(monkeypatch)
    cache, topics = MemoStore(tmp_path), np.array([0, 0, 1, 1, 2, 2])
    expected = class_counts.class_sums(counts.matrix, topics)
    first = cached_topic_sums(cache, counts, "counts-a", topics)
    second = cached_topic_sums(MemoStore(tmp_path), counts, "counts-a", topics)  # a later run
    assert same_sums(first, expected) and same_sums(second, expected)
    assert len(calls) == 2  # the expected sums and the first call: the second read them back


def test_a_moved_paper_or_other_term_counts_miss_the_kept_sums(tmp_path, counts, monkeypatch):
    calls = counting(monkeypatch)
    cache = MemoStore(tmp_path)
    cached_topic_sums(cache, counts, "counts-a", np.array([0, 0, 1, 1, 2, 2]))
    moved = np.array([0, 0, 1, 2, 2, 2])  # one paper changed topic: other sums
    assert same_sums(cached_topic_sums(cache, counts, "counts-a", moved), class_counts.class_sums(counts.matrix, moved))
    other = term_counts_for(tokenize_texts(TEXTS), LabelConfig(extra_stop_words=["graph"]))
    found = cached_topic_sums(cache, other, "counts-b", moved)  # other stop words: other matrix, other key
    assert same_sums(found, class_counts.class_sums(other.matrix, moved))
    assert len(calls) == 5  # each of the three cached calls summed, and so did the two expected sums


def test_damaged_or_mismatched_kept_sums_are_summed_again(tmp_path, counts):
    cache, topics = MemoStore(tmp_path), np.array([0, 0, 1, 1, 2, 2])
    expected = class_counts.class_sums(counts.matrix, topics)
    cached_topic_sums(cache, counts, "counts-a", topics)
    (path,) = cache.folder("topic-sums").glob("*.npz")
    data = bytearray(path.read_bytes())
    needle = expected[1].data.astype(np.int32).tobytes()
    at = bytes(data).index(needle)
    data[at] ^= 0x7F  # a count changed in place: the file still reads as arrays
    path.write_bytes(bytes(data))
    assert same_sums(cached_topic_sums(cache, counts, "counts-a", topics), expected)
    # A file under the right key holding sums of another matrix (fewer terms) is not served either.
    fewer = term_counts_for(tokenize_texts(TEXTS[:4]), LabelConfig())
    wrong = class_counts.class_sums(fewer.matrix, topics[:4])
    from pipeline.label.class_counts import ClassSumsArrays

    cache.put("topic-sums", path.stem, wrong, ClassSumsArrays())
    assert same_sums(cached_topic_sums(cache, counts, "counts-a", topics), expected)
