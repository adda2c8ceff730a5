"""What a label rerun reads back instead of working out: fragment answers and NPMI (``pipeline.label.cache``)."""

from __future__ import annotations

import pytest

from pipeline.label import audit
from pipeline.label.audit import is_fragment
from pipeline.label.cache import kept_fragments, kept_npmi
from pipeline.label.phrases import phrase_tokens
from pipeline.memo import MemoStore

TITLES = ["Multimodal large language models for charts", "Multimodal large language models see", "Graph networks"]
ABSTRACTS = ["We test multimodal large language models.", "Multimodal large language models read.", "Graphs."]
PHRASES = ["multimodal large", "multimodal large language", "large language models", "graph networks", "charts"]


def damage(path):
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"multimodal")
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_kept_fragment_answers_are_those_worked_out_and_a_damaged_file_is_worked_out_again(tmp_path, monkeypatch):
    cache = MemoStore(tmp_path)
    first = phrase_tokens(TITLES, ABSTRACTS)
    keep = kept_fragments(cache, "index", first)
    answers = [is_fragment(first, phrase) for phrase in PHRASES]
    assert answers[0] and not answers[2]  # "multimodal large" goes on with "language"; the models do not
    keep()
    again = phrase_tokens(TITLES, ABSTRACTS)
    kept_fragments(cache, "index", again)
    assert again.fragments == first.fragments and len(again.fragments) == len(PHRASES)

    def never(*_):
        raise AssertionError("a kept answer was worked out again")

    with monkeypatch.context() as patched:
        patched.setattr(audit, "continuation", never)
        assert [is_fragment(again, phrase) for phrase in PHRASES] == answers  # read back
    other = phrase_tokens(TITLES, ABSTRACTS)
    kept_fragments(cache, "another index", other)  # other texts or code: nothing served
    assert other.fragments == {}
    (path,) = cache.folder("fragments").glob("*.npz")
    damage(path)
    damaged = phrase_tokens(TITLES, ABSTRACTS)
    keep_damaged = kept_fragments(cache, "index", damaged)
    assert damaged.fragments == {}  # not trusted: worked out again, and kept anew
    assert [is_fragment(damaged, phrase) for phrase in PHRASES] == answers
    keep_damaged()
    restored = phrase_tokens(TITLES, ABSTRACTS)
    kept_fragments(cache, "index", restored)
    assert restored.fragments == first.fragments


def test_kept_npmi_is_worked_out_once_per_texts_and_words(tmp_path):
    cache, made = MemoStore(tmp_path), []

    def compute(words):
        made.append(words)
        return None if words == [["none"]] else 0.125 * len(words)

    npmi_of = kept_npmi(cache, "texts", compute)
    assert npmi_of([["a", "b"], ["c", "d"]]) == 0.25
    assert npmi_of([["a", "b"], ["c", "d"]]) == 0.25 and len(made) == 1  # read back
    assert npmi_of([["a", "b"]]) == 0.125 and len(made) == 2  # other keywords
    assert kept_npmi(cache, "other texts", compute)([["a", "b"]]) == 0.125 and len(made) == 3
    assert npmi_of([["none"]]) is None and npmi_of([["none"]]) is None and len(made) == 4  # None is kept too
    for path in cache.folder("npmi").glob("*.npz"):
        data = bytearray(path.read_bytes())
        at = bytes(data).index(b'"npmi"')
        data[at + 1] ^= 0x01
        path.write_bytes(bytes(data))
    assert npmi_of([["a", "b"], ["c", "d"]]) == 0.25 and len(made) == 5  # a damaged value is worked out again


@pytest.mark.parametrize("value", ["0.5", "true", '"x"'])
def test_a_kept_npmi_that_is_not_a_number_is_not_served(tmp_path, value):
    import numpy as np

    from pipeline.label.cache import NpmiValue

    arrays = {"json": np.frombuffer(f'{{"npmi": {value}}}'.encode(), dtype=np.uint8)}
    if value == "0.5":
        assert NpmiValue().decode(arrays) == {"npmi": 0.5}
    else:
        with pytest.raises(ValueError, match="not a number"):
            NpmiValue().decode(arrays)
