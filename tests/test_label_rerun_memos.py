"""What a label rerun reads back instead of working out: fragment answers and NPMI (``pipeline.label.cache``)."""

from __future__ import annotations

import pytest

from pipeline.config import LabelConfig
from pipeline.label import audit, phrase_index, spelling
from pipeline.label.audit import is_fragment
from pipeline.label.cache import FragmentAnswers, SpellingUses, kept_answers, kept_npmi
from pipeline.label.phrases import phrase_tokens
from pipeline.label.spelling import spell
from pipeline.memo import MemoStore

TITLES = ["Multimodal large language models for charts", "Multimodal large language models see", "Graph networks"]
ABSTRACTS = ["We test multimodal large language models.", "Multimodal large language models read.", "Graphs."]
PHRASES = ["multimodal large", "multimodal large language", "large language models", "graph networks", "charts"]


def kept_fragments(cache, key, text):
    return kept_answers(cache, "fragments", key, text.fragments, FragmentAnswers())


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


def test_kept_spellings_spell_as_a_cold_index_and_a_damaged_file_is_worked_out_again(tmp_path, monkeypatch):
    from test_naming import papers_of

    papers = papers_of(TITLES * 2, ABSTRACTS * 2)
    cache = MemoStore(tmp_path)
    first = phrase_index(papers, LabelConfig())
    terms = list(range(first.papers.shape[1]))
    keep = kept_answers(cache, "spellings", "index", first.spellings, SpellingUses())
    spelled = spell(first, terms[:4])
    spelled |= spell(first, terms)  # the first four read from the index's own answers
    keep()
    cold = phrase_index(papers, LabelConfig())
    assert spell(cold, terms) == spelled and "Multimodal large language models" not in spelled.values()
    again = phrase_index(papers, LabelConfig())
    kept_answers(cache, "spellings", "index", again.spellings, SpellingUses())
    assert again.spellings == cold.spellings and set(again.spellings) == set(terms)

    def never(*_):
        raise AssertionError("a kept spelling was worked out again")

    with monkeypatch.context() as patched:
        patched.setattr(spelling, "_occurrences", never)
        assert spell(again, terms) == spelled and spell(again, terms[2:5]) == spell(cold, terms[2:5])
    (path,) = cache.folder("spellings").glob("*.npz")
    data = bytearray(path.read_bytes())
    data[bytes(data).index(b"[[") + 2] ^= 0x01  # inside the JSON document
    path.write_bytes(bytes(data))
    damaged = phrase_index(papers, LabelConfig())
    kept_answers(cache, "spellings", "index", damaged.spellings, SpellingUses())
    assert damaged.spellings == {} and spell(damaged, terms) == spelled
