"""The label stage's update path (pipeline.feed.label_update, pipeline.feed.relabel): same sums, same tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import LabelConfig
from pipeline.feed.label_update import (
    LabelStateArrays,
    build_state,
    grown_state,
    merged_terms,
    state_audit,
    state_keywords,
)
from pipeline.label import phrase_tokens, term_counts_for
from pipeline.label.audit import name_audit
from pipeline.memo import text_key
from pipeline.terms import tokenize_texts

SUBJECTS = {
    0: "Graph neural networks learn node embeddings by message passing over the graph structure.",
    1: "Speech recognition models transcribe spoken audio into text with acoustic encoders.",
    2: "Protein folding prediction maps amino acid sequences to three dimensional structures.",
}


def corpus(n: int, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    """``n`` papers on the three subjects, with words of their own so that every paper differs."""
    rng = np.random.default_rng(seed)
    extra = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
    titles, abstracts, topics = [], [], []
    for index in range(n):
        topic = int(rng.integers(0, 3))
        words = " ".join(rng.choice(extra, size=3))
        titles.append(f"{SUBJECTS[topic].split(' ', 3)[0]} {SUBJECTS[topic].split(' ')[1]} study {index} {words}")
        abstracts.append(f"{SUBJECTS[topic]} We add {words} and report {index} results.")
        topics.append(topic)
    return titles, abstracts, np.array(topics, dtype=np.int64)


def state_of(ids, titles, abstracts, topics, names, config):
    texts = [f"{t}. {a}" for t, a in zip(titles, abstracts, strict=True)]
    counts = term_counts_for(tokenize_texts(texts), config)
    return build_state(ids, [text_key(t) for t in texts], topics, counts, phrase_tokens(titles, abstracts), names)


def test_merged_term_spaces_number_terms_as_one_count_over_all_texts():
    config = LabelConfig()
    first = ["graph neural networks for molecules", "speech recognition with transformers"]
    second = ["neural networks for speech", "protein folding with graph networks"]
    a, b = term_counts_for(tokenize_texts(first), config), term_counts_for(tokenize_texts(second), config)
    whole = term_counts_for(tokenize_texts(first + second), config)
    words, ngrams, a_ids, b_ids = merged_terms(a.vocabulary, a.ngrams, b.vocabulary, b.ngrams)
    assert words.tolist() == whole.vocabulary.tolist()
    assert [block.tolist() for block in ngrams] == [block.tolist() for block in whole.ngrams]
    assert whole.names(a_ids.tolist()) == a.names(range(len(a_ids)))
    assert whole.names(b_ids.tolist()) == b.names(range(len(b_ids)))


def test_a_grown_state_equals_the_state_of_all_papers_counted_from_scratch(tmp_path):
    config = LabelConfig()
    titles, abstracts, topics = corpus(60, seed=1)
    ids = [f"p{index:03d}" for index in range(60)]
    names = {-1: "Outliers", 0: "Graph neural networks", 1: "Speech recognition", 2: "Protein folding"}
    topics[[3, 4]] = -1  # two outliers
    old = slice(0, 45)
    before = state_of(ids[old], titles[old], abstracts[old], topics[old], names, config)
    # This run: 15 new papers, and three old papers changed topic (one outlier placed, two moved).
    now = topics.copy()
    now[3], now[10], now[11] = 1, (topics[10] + 1) % 3, -1
    previous = np.concatenate([topics[old], np.full(15, -2)])
    changed = np.flatnonzero(previous != now)
    texts = [f"{t}. {a}" for t, a in zip(titles, abstracts, strict=True)]
    changed_counts = term_counts_for(tokenize_texts([texts[i] for i in changed]), config)
    changed_tokens = phrase_tokens([titles[i] for i in changed], [abstracts[i] for i in changed])
    keys = [text_key(text) for text in texts]
    grown = grown_state(before, ids, keys, now, changed, changed_counts, changed_tokens)
    whole = state_of(ids, titles, abstracts, now, names, config)
    assert grown.classes.tolist() == whole.classes.tolist()
    assert grown.vocabulary.tolist() == whole.vocabulary.tolist()
    assert (grown.counts != whole.counts).nnz == 0 and (grown.holding != whole.holding).nnz == 0
    assert grown.audit_inside.tolist() == whole.audit_inside.tolist()
    assert grown.audit_total.tolist() == whole.audit_total.tolist()
    assert state_keywords(grown, config) == state_keywords(whole, config)
    assert state_audit(grown) == name_audit(phrase_tokens(titles, abstracts), now, names)
    # Stored and read back, a state is the same state.
    codec = LabelStateArrays()
    arrays = {name: np.asarray(value) for name, value in codec.encode(grown).items()}
    again = codec.decode(arrays)
    assert again.paper_ids.tolist() == ids and again.audit_phrases.tolist() == grown.audit_phrases.tolist()
    assert (again.counts != grown.counts).nnz == 0 and (again.holding != grown.holding).nnz == 0


def test_keywords_from_the_state_are_those_of_the_full_path():
    from pipeline.label.keywords import ctfidf_keywords

    config = LabelConfig()
    titles, abstracts, topics = corpus(50, seed=2)
    names = {0: "Graph neural networks", 1: "Speech recognition", 2: "Protein folding"}
    texts = [f"{t}. {a}" for t, a in zip(titles, abstracts, strict=True)]
    counts = term_counts_for(tokenize_texts(texts), config)
    local, keywords, _ = ctfidf_keywords(counts, topics, config)
    state = build_state([f"p{i}" for i in range(50)], [text_key(t) for t in texts], local, counts,
                        phrase_tokens(titles, abstracts), names)  # fmt: skip
    assert state_keywords(state, config) == keywords


def test_a_state_that_does_not_match_the_run_is_refused():
    config = LabelConfig()
    titles, abstracts, topics = corpus(20, seed=3)
    ids = [f"p{i}" for i in range(20)]
    state = state_of(ids, titles, abstracts, topics, {0: "a", 1: "b", 2: "c"}, config)
    keys = [text_key(f"{t}. {a}") for t, a in zip(titles, abstracts, strict=True)]
    moved = topics.copy()
    moved[1] = (topics[1] + 1) % 3
    # Paper 1 is said to leave its topic, but the rows given are those of a text that topic never held.
    stranger = ["Quantum chromodynamics lattice simulations. Hadron masses from lattice gauge theory."]
    counts = term_counts_for(tokenize_texts(stranger), config)
    tokens = phrase_tokens(["Quantum chromodynamics lattice simulations"], ["Hadron masses from lattice gauge theory."])
    with pytest.raises(RuntimeError, match="below zero"):
        grown_state(state, ids, keys, moved, np.array([1]), counts, tokens)


def seed_copies(tmp_path, seed_pages):
    """The seed pages saved on 2026-09-01 (so that their dates do not depend on the checkout's)."""
    import os

    pages = []
    for page in seed_pages:
        copy = tmp_path / page.name
        copy.write_bytes(page.read_bytes())
        os.utime(copy, (1788220800, 1788220800))
        pages.append(str(copy))
    return pages


def test_an_update_is_labelled_from_the_last_runs_sums_and_equals_the_full_path(tmp_path, seed_pages):
    """Day 2 adds papers to existing topics: the update path labels them; a forced full label agrees."""
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore
    from tests.test_pipeline import make_config

    extra = {"cluster": {"incremental_max_share": 5.0, "update_drift": 1.0}}
    pages = seed_copies(tmp_path, seed_pages)
    day1 = load_config(make_config(tmp_path, pages, name="feed", **extra))
    run_pipeline(day1, until="label")
    store = ArtifactStore(day1.run_dir, day1.cache_dir, STAGE_NAMES)
    papers = store.read_table("parse", "papers.parquet")
    first_hierarchy = store.read_table("label", "hierarchy.parquet")
    # Day 2: six papers that restate six seed papers in other words (they join those papers' topics).
    rows = papers.iloc[[0, 9, 18, 27, 36, 45]]
    added = pd.DataFrame(
        {
            "title": "Revisiting " + rows["title"].str.lower(),
            "abstract": "We revisit this work. " + rows["abstract"] + " Our replication confirms the findings.",
            "date": "2026-08-20",
        }
    )
    day2_file = tmp_path / "day2.csv"
    added.to_csv(day2_file, index=False)
    day2 = load_config(make_config(tmp_path, [*pages, str(day2_file)], name="feed", **extra))
    result = run_pipeline(day2, until="label")
    counts = {outcome.stage: outcome.counts for outcome in result.outcomes}
    assert counts["cluster"]["incremental"] == 6
    notes = store.read_json("label", "label.json")["notes"]
    assert counts["label"]["labelled"] == "update", notes
    assert any("labelled from the last run's sums" in note for note in notes)
    updated = {name: store.read_table("label", name) for name in ("assignments.parquet", "topics.parquet")}
    hierarchy = store.read_table("label", "hierarchy.parquet")

    forced = run_pipeline(day2, until="label", force_from="label")
    assert {o.stage: o.counts for o in forced.outcomes}["label"]["labelled"] == "full"
    assert any(note.startswith("labelled in full: the label stage was forced")
               for note in store.read_json("label", "label.json")["notes"])  # fmt: skip
    full = {name: store.read_table("label", name) for name in ("assignments.parquet", "topics.parquet")}
    pd.testing.assert_frame_equal(updated["assignments.parquet"], full["assignments.parquet"])
    columns = ["topic", "name", "slug", "size", "keywords", "keyword_weights", "representative_ids",
               "name_coverage", "name_lift", "name_faults"]  # fmt: skip
    tables = (updated["topics.parquet"], full["topics.parquet"])
    a, b = (table[columns].sort_values("topic").reset_index(drop=True) for table in tables)
    for column in ("keywords", "representative_ids"):
        assert a[column].map(list).tolist() == b[column].map(list).tolist(), column
    for column in ("keyword_weights",):
        for x, y in zip(a[column], b[column], strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-12)
    pd.testing.assert_frame_equal(a.drop(columns=["keywords", "representative_ids", "keyword_weights"]),
                                  b.drop(columns=["keywords", "representative_ids", "keyword_weights"]))  # fmt: skip
    # The same topics make the same tree: the update keeps the last run's, names and all.
    pd.testing.assert_frame_equal(hierarchy, first_hierarchy)
