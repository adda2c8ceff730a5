"""Topics described from a sample of their papers (label.fit_sample, pipeline.label.sample)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.label.sample import MIN_PER_TOPIC, label_sample_size, stratified_rows


def test_the_sample_size_follows_the_setting():
    assert label_sample_size(50_000, "auto") == 50_000
    assert label_sample_size(1_000_000, "auto") == 100_000
    assert label_sample_size(1_000_000, "all") == 1_000_000
    assert label_sample_size(500, 200) == 200 and label_sample_size(100, 200) == 100


def test_each_topic_gives_its_share_and_a_small_topic_all_of_its_papers():
    labels = np.array([0] * 6000 + [1] * 3000 + [2] * 50 + [-1] * 950)
    rows = stratified_rows(labels, 1000, seed=7)
    assert np.array_equal(rows, np.sort(rows)) and len(set(rows.tolist())) == len(rows)
    taken = pd.Series(labels[rows]).value_counts()
    assert taken[0] == 600 and taken[1] == 300  # their share of 1,000
    assert taken[2] == 50  # fewer papers than MIN_PER_TOPIC: all of them
    assert taken[-1] == max(MIN_PER_TOPIC, 95)
    assert np.array_equal(rows, stratified_rows(labels, 1000, seed=7))  # seeded
    assert not np.array_equal(rows, stratified_rows(labels, 1000, seed=8))


def test_a_sampled_label_keeps_every_papers_topic_and_describes_it_from_the_sample(tmp_path, seed_pages, monkeypatch):
    import re

    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore
    from tests.test_pipeline import make_config

    monkeypatch.setattr("pipeline.label.sample.MIN_PER_TOPIC", 2)  # so that the sample leaves papers out
    pages = [str(page) for page in seed_pages]
    tables = {}
    for name, setting in (("whole", "all"), ("sampled", 30)):
        config = load_config(make_config(tmp_path, pages, name=name, label={"fit_sample": setting}))
        run_pipeline(config, until="label")
        store = ArtifactStore(config.run_dir, config.cache_dir, STAGE_NAMES)
        tables[name] = {
            table: store.read_table("label", f"{table}.parquet") for table in ("assignments", "topics", "hierarchy")
        }
        tables[name]["notes"] = store.read_json("label", "label.json")["notes"]
        tables[name]["metrics"] = store.read_json("label", "metrics.json")
    whole, sampled = tables["whole"], tables["sampled"]
    assert not any("sample" in note for note in whole["notes"])
    described = [int(m.group(1)) for note in sampled["notes"] if (m := re.search(r"a sample of (\d+) of the 64", note))]
    assert described and 30 <= described[0] < 64
    # Every paper keeps the topic it has when all papers are read: same ids, same sizes.
    pd.testing.assert_frame_equal(
        whole["assignments"][["paper_id", "topic", "score"]], sampled["assignments"][["paper_id", "topic", "score"]]
    )
    sizes = sampled["assignments"]["topic"].value_counts()
    topics = sampled["topics"].set_index("topic")
    assert all(topics.at[topic, "size"] == sizes[topic] for topic in sizes.index)
    real = sorted(t for t in topics.index if t >= 0)
    assert topics.loc[real, "size"].is_monotonic_decreasing  # numbered by their size among all papers
    # Best papers are ranked among all of a topic's papers, not only the sampled ones.
    pd.testing.assert_series_equal(
        whole["topics"].set_index("topic")["representative_ids"].map(list),
        topics["representative_ids"].map(list),
    )
    # Keywords are counted over all papers (in parts, summed): those of the run that read every paper.
    for column in ("keywords", "keyword_weights"):
        pd.testing.assert_series_equal(whole["topics"].set_index("topic")[column].map(list), topics[column].map(list))
    assert any("term counts of all 64 papers, counted in" in note for note in sampled["notes"])
    # The tree covers exactly the topics; names and keywords exist for each.
    if len(sampled["hierarchy"]):
        assert sorted(max(sampled["hierarchy"]["topics"], key=len)) == real
    assert topics.loc[real, "name"].str.len().gt(0).all() and topics.loc[real, "keywords"].map(len).gt(0).all()
    assert sampled["metrics"]["npmi"] is not None


def test_the_summed_counts_are_let_go_before_the_sample_is_named(tmp_path, seed_pages, monkeypatch):
    """The sampled path takes the keywords from the pile's counts, then names the sample without them."""
    import gc

    import pipeline.label.paths as paths
    from pipeline.config import load_config
    from pipeline.label.class_counts import ClassCounts, ClassKeywords
    from pipeline.runner import run_pipeline
    from tests.test_pipeline import make_config

    monkeypatch.setattr("pipeline.label.sample.MIN_PER_TOPIC", 2)
    alive: list[tuple[int, bool]] = []
    naming = paths._label_all

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        gc.collect()
        # type(), not isinstance(): isinstance reads __class__ through a weakref.proxy, which raises
        # ReferenceError for a proxy whose object is gone (one of them lives in the full suite's heap).
        counts = sum(type(thing) is ClassCounts for thing in gc.get_objects())
        alive.append((counts, isinstance(args[8] if len(args) > 8 else kwargs.get("class_keywords"), ClassKeywords)))
        return naming(*args, **kwargs)

    monkeypatch.setattr(paths, "_label_all", watched)
    config = load_config(make_config(tmp_path, [str(page) for page in seed_pages], label={"fit_sample": 30}))
    run_pipeline(config, until="label")
    assert alive == [(0, True)]  # named once, from the keywords, with no summed counts in memory
