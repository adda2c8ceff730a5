"""Names, tree and audit kept between runs (``pipeline.label.named``, ``label.cache.naming_memo``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_label import GRAPH, SPEECH, toy_papers

from pipeline.config import LabelConfig, RunConfig
from pipeline.files import table_to_bytes
from pipeline.label import label_topics
from pipeline.label.cache import naming_memo
from pipeline.label.named import AUDIT_COLUMNS, Naming, NamingArrays
from pipeline.memo import MemoStore

RUN = RunConfig(name="memo", inputs=["papers.jsonl"])
TEXTS = [GRAPH + f" variant {i}" for i in range(6)] + [SPEECH + f" variant {i}" for i in range(5)]


def toy_run(config: LabelConfig, memo=None):
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([np.tile([1.0, 0.0], (6, 1)), np.tile([0.0, 1.0], (5, 1))])
    embeddings = embeddings + 0.01 * rng.normal(size=embeddings.shape)
    labels = np.array([1] * 6 + [0] * 5)
    return label_topics(toy_papers(TEXTS), embeddings, labels, embeddings, config, None, naming_memo=memo)


def recording(cache: MemoStore, phrases_key: str, label: LabelConfig, made: list[int]):
    """naming_memo over ``cache``, noting in ``made`` each time names are worked out."""
    memo = naming_memo(cache, phrases_key, RUN, label)

    def counted(parts, work_out, valid):
        def work_out_counted():
            made.append(1)
            return work_out()

        return memo(parts, work_out_counted, valid)

    return counted


def test_kept_names_give_the_same_tables_and_serve_a_keyword_setting(tmp_path):
    cache, made = MemoStore(tmp_path), []
    plain = toy_run(LabelConfig(representation="none"))
    first = toy_run(LabelConfig(representation="none"), recording(cache, "p", LabelConfig(), made))
    fewer = LabelConfig(representation="none", n_keywords=4)
    served = toy_run(fewer, recording(cache, "p", fewer, made))
    assert len(made) == 1  # the second run read the names back
    for result in (first, served):
        assert table_to_bytes(result.hierarchy) == table_to_bytes(plain.hierarchy)
    assert table_to_bytes(first.topics) == table_to_bytes(plain.topics)
    fresh = toy_run(fewer)
    assert table_to_bytes(served.topics) == table_to_bytes(fresh.topics)
    assert [len(words) for words in served.topics["keywords"]] == [4, 4]


def test_names_are_worked_out_again_when_anything_they_depend_on_changes(tmp_path):
    cache, made = MemoStore(tmp_path), []
    base = LabelConfig(representation="none")
    toy_run(base, recording(cache, "p", base, made))
    toy_run(base, recording(cache, "p", base, made))
    assert len(made) == 1
    toy_run(base, recording(cache, "other phrase index", base, made))  # other texts or stop words
    assert len(made) == 2
    phrases = LabelConfig(representation="none", name_phrases=1)  # a naming setting
    toy_run(phrases, recording(cache, "p", phrases, made))
    assert len(made) == 3
    memo = naming_memo(cache, "p", RUN, base)
    kept = memo({"topics": "t", "centroids": "c"}, lambda: made.append(1) or toy_naming(), lambda naming: True)
    memo({"topics": "t", "centroids": "other"}, lambda: made.append(1) or toy_naming(), lambda naming: True)
    again = memo({"topics": "t", "centroids": "c"}, lambda: made.append(1) or toy_naming(), lambda naming: True)
    assert len(made) == 5 and again.names == kept.names
    model2vec = RUN.model_copy(update={"embed": RUN.embed.model_copy(update={"backend": "model2vec"})})
    other_model = naming_memo(cache, "p", model2vec, base)
    other_model({"topics": "t", "centroids": "c"}, lambda: made.append(1) or toy_naming(), lambda naming: True)
    assert len(made) == 6


def toy_naming(fallback: dict[int, list[str]] | None = None) -> Naming:
    hierarchy = pd.DataFrame([{"parent_id": 2, "parent_name": "Both", "child_left_id": 0, "child_right_id": 1,
                               "distance": 0.5, "topics": [0, 1]}])  # fmt: skip
    audit = {"name_coverage": [0.5, float("nan")], "name_lift": [2.0, 1.0], "name_rank": [1.0, 2.0],
             "name_faults": ["", "far"]}  # fmt: skip
    return Naming({0: "Graphs", 1: "Speech, é"}, hierarchy, {0: 0, 1: 0}, {0: "Both"}, audit, fallback or {})


def test_kept_names_whose_keyword_names_no_longer_fit_are_worked_out_again(tmp_path):
    """A topic named from its keywords keeps its name only while its keywords stay (label_topics checks)."""
    seen = {}

    def keep(parts, work_out, valid):
        naming = work_out()
        topic = min(naming.names)
        seen["theirs"] = valid(toy_naming({topic: ["graph neural"]}))
        seen["none"] = valid(toy_naming({}))
        return naming

    result = toy_run(LabelConfig(representation="none"), keep)
    topic = int(result.topics["topic"].min())
    words = list(result.topics.set_index("topic").loc[topic, "keywords"])
    assert seen == {"theirs": words == ["graph neural"], "none": True} and words != ["graph neural"]
    calls = []
    cache = MemoStore(tmp_path)
    memo = naming_memo(cache, "p", RUN, LabelConfig())
    memo({"topics": "t"}, lambda: toy_naming({0: ["a", "b"]}), lambda naming: True)
    again = memo({"topics": "t"}, lambda: calls.append(1) or toy_naming({0: ["c"]}), lambda n: n.fallback[0] == ["c"])
    assert calls == [1] and again.fallback == {0: ["c"]}


def test_a_naming_is_read_back_as_it_was_stored():
    codec = NamingArrays()
    naming = toy_naming({1: ["speech recognition", "acoustic"]})
    back = codec.decode(codec.encode(naming))
    assert back.names == naming.names and back.coarse_of == naming.coarse_of and back.fallback == naming.fallback
    assert back.coarse_names == naming.coarse_names and list(back.audit) == list(AUDIT_COLUMNS)
    np.testing.assert_array_equal(np.array(back.audit["name_coverage"]), np.array([0.5, np.nan]))
    assert table_to_bytes(back.hierarchy) == table_to_bytes(naming.hierarchy)
    empty = Naming({}, pd.DataFrame({c: [] for c in naming.hierarchy.columns}), {}, {}, naming.audit, {})
    assert table_to_bytes(codec.decode(codec.encode(empty)).hierarchy) == table_to_bytes(empty.hierarchy)


def test_names_of_earlier_naming_settings_stay_kept_beside_newer_ones(tmp_path):
    """Trying naming settings one after another keeps the names of each (a few KB): going back reads them."""
    from pipeline.label.cache import NAMINGS_KEPT

    cache, made = MemoStore(tmp_path), []
    for n_phrases in (2, 1, 3, 4, 2, 1):
        label = LabelConfig(name_phrases=n_phrases)
        memo = naming_memo(cache, "p", RUN, label)
        memo({"topics": "t"}, lambda n=n_phrases: made.append(n) or toy_naming(), lambda naming: True)
    assert made == [2, 1, 3, 4] and NAMINGS_KEPT >= 4
