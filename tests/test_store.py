"""The artifact store: round trips, stage markers, atomic report swap, run lock, embedding cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import RunLockedError
from pipeline.store import (
    ArtifactStore,
    EmbeddingCache,
    array_to_bytes,
    json_to_bytes,
    stage_cache_key,
    table_to_bytes,
)


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "run", tmp_path / ".cache")


def test_stage_round_trip_of_every_artifact_kind(store):
    table = pd.DataFrame({"paper_id": pd.Series(["a", "b"], dtype="string"), "topic": [0, -1]})
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    store.save_stage(
        "cluster", "k1", {"t.parquet": table_to_bytes(table), "a.npy": array_to_bytes(array),
                          "m.json": json_to_bytes({"notes": ["x"]})}, 1.5, {"papers": 2},
    )  # fmt: skip
    assert store.stage_dir("cluster").name == "03_cluster"
    pd.testing.assert_frame_equal(store.read_table("cluster", "t.parquet"), table)
    np.testing.assert_array_equal(store.read_array("cluster", "a.npy"), array)
    assert store.read_array("cluster", "a.npy").dtype == np.float32
    assert store.read_json("cluster", "m.json") == {"notes": ["x"]}
    record = store.finished("cluster")
    assert record.key == "k1" and record.counts == {"papers": 2}
    assert not [p for p in store.stage_dir("cluster").iterdir() if p.name.endswith(".tmp")]


def test_a_table_read_twice_is_read_once_and_a_rewritten_one_again(store, monkeypatch):
    first = pd.DataFrame({"paper_id": pd.Series(["a", "b"], dtype="string"), "topic": [0, 1]})
    store.save_stage("label", "k1", {"t.parquet": table_to_bytes(first)}, 1.0, {})
    reads = []
    real_read = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *args, **kwargs: reads.append(args) or real_read(*args, **kwargs))
    seen = store.read_table("label", "t.parquet")
    seen.loc[0, "topic"] = 99  # a caller's change stays its own (copy-on-write)
    assert store.read_table("label", "t.parquet")["topic"].tolist() == [0, 1]
    assert len(reads) == 1
    second = first.assign(topic=[5, 6])
    store.save_stage("label", "k2", {"t.parquet": table_to_bytes(second)}, 1.0, {})
    assert store.read_table("label", "t.parquet")["topic"].tolist() == [5, 6]
    assert len(reads) == 2


def test_array_hash_covers_shape_and_dtype():
    flat = np.zeros(6, dtype=np.float32)
    assert array_to_bytes(flat) != array_to_bytes(flat.reshape(2, 3))
    assert array_to_bytes(flat) != array_to_bytes(flat.astype(np.float64))


def test_unfinished_or_damaged_stage_is_not_trusted(store):
    store.save_stage("embed", "k", {"embeddings.npy": array_to_bytes(np.ones((2, 2)))}, 0.1, {})
    assert store.finished("embed") is not None
    (store.stage_dir("embed") / "embeddings.npy").unlink()
    assert store.finished("embed") is None  # an output is missing
    store.save_stage("embed", "k", {"embeddings.npy": array_to_bytes(np.ones((2, 2)))}, 0.1, {})
    store.invalidate("embed")
    assert store.finished("embed") is None  # marker removed before a recompute
    store.save_stage("embed", "k", {"embeddings.npy": array_to_bytes(np.ones((2, 2)))}, 0.1, {})
    marker = store.stage_dir("embed") / "_stage.json"
    marker.write_text(marker.read_text().replace('"format_version": 1', '"format_version": 0'))
    assert store.finished("embed") is None  # written by another store format


def test_cache_key_changes_with_each_part():
    base = stage_cache_key("label", 1, {"n": 10}, ["h1"])
    assert base == stage_cache_key("label", 1, {"n": 10}, ["h1"])
    assert base != stage_cache_key("cluster", 1, {"n": 10}, ["h1"])
    assert base != stage_cache_key("label", 2, {"n": 10}, ["h1"])
    assert base != stage_cache_key("label", 1, {"n": 11}, ["h1"])
    assert base != stage_cache_key("label", 1, {"n": 10}, ["h2"])


def test_publish_report_replaces_old_files_and_drops_stale_topic_csvs(store):
    store.publish_report({"index.html": b"old", "topics/00-a.csv": b"a"})
    store.publish_report({"index.html": b"new", "topics/00-b.csv": b"b"})
    assert (store.run_dir / "index.html").read_bytes() == b"new"
    assert sorted(p.name for p in (store.run_dir / "topics").iterdir()) == ["00-b.csv"]
    assert not [p for p in store.run_dir.iterdir() if p.name.startswith(".report-staging")]


def test_publish_report_refuses_paths_outside_the_run(store):
    with pytest.raises(Exception, match="outside the run folder"):
        store.publish_report({"../evil.html": b"x"})
    assert not (store.run_dir.parent / "evil.html").exists()


def test_failed_publish_keeps_the_previous_report(store, monkeypatch):
    store.publish_report({"index.html": b"good"})

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pipeline.store.atomic_write_bytes", disk_full)
    with pytest.raises(OSError):
        store.publish_report({"index.html": b"new"})
    assert (store.run_dir / "index.html").read_bytes() == b"good"


def test_lock_refuses_a_live_run_and_takes_over_a_dead_one(store):
    with store.lock():
        with pytest.raises(RunLockedError, match="another papertopics run"):
            with store.lock():
                pass
    # A lock file left by a process that no longer exists does not block forever.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (store.run_dir / ".lock").write_text(dead.stdout.strip())
    with store.lock():
        assert (store.run_dir / ".lock").read_text() == str(os.getpid())
    assert not (store.run_dir / ".lock").exists()


def test_embedding_cache_returns_what_was_added(tmp_path):
    cache = EmbeddingCache(tmp_path, "model-a")
    keys = [EmbeddingCache.text_key(text) for text in ("one", "two", "three")]
    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    cache.add(keys[:2], vectors[:2])
    cache.add(keys[2:], vectors[2:])
    found = cache.lookup([*keys, EmbeddingCache.text_key("four")])
    assert set(found) == set(keys)
    np.testing.assert_array_equal(found[keys[2]], vectors[2])
    assert EmbeddingCache(tmp_path, "model-b").lookup(keys) == {}  # keyed by model too


def texts_whose_key_ends_in_nul(count: int) -> list[str]:
    """Texts whose 16-byte cache key ends in a NUL byte (numpy's S16 drops it when read back)."""
    found, i = [], 0
    while len(found) < count:
        text = f"paper number {i}"
        if EmbeddingCache.text_key(text).endswith(b"\0"):
            found.append(text)
        i += 1
    return found


def test_a_text_whose_key_ends_in_a_nul_byte_is_found_again(tmp_path):
    texts = [*texts_whose_key_ends_in_nul(2), "an ordinary text"]
    keys = [EmbeddingCache.text_key(text) for text in texts]
    cache = EmbeddingCache(tmp_path, "model-a")
    cache.add(keys, np.eye(3, dtype=np.float32))
    found = cache.lookup(keys)
    assert set(found) == set(keys)
    np.testing.assert_array_equal(found[keys[0]], [1, 0, 0])


def test_a_text_whose_key_ends_in_a_nul_byte_is_tokenised_once(tmp_path, monkeypatch):
    import pipeline.runner as runner
    from pipeline.runner import _cached_tokens
    from pipeline.terms import tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache")
    texts = [*texts_whose_key_ends_in_nul(1), "graph neural networks"]
    _cached_tokens(store, texts)
    tokenised: list[list[str]] = []

    def counting(batch):
        tokenised.append(list(batch))
        return tokenize_texts(batch)

    monkeypatch.setattr("pipeline.terms.tokenize_texts", counting)
    assert runner._cached_tokens(store, [*texts, "protein folding"])[0] is not None
    assert tokenised == [["protein folding"]]


def test_texts_assembled_from_several_token_shards_are_kept_whole_for_the_next_run(tmp_path, monkeypatch):
    from pipeline.runner import _cached_tokens
    from pipeline.store import TokenCache
    from pipeline.terms import TOKENIZER_VERSION, tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache")
    folder = TokenCache(store.cache_dir, TOKENIZER_VERSION).folder
    first = [f"graph neural networks paper {i}" for i in range(5)]
    _cached_tokens(store, first)
    assert not list(folder.glob("selection-*"))  # one shard holds exactly these texts: nothing to keep
    grown = [*first, "speech recognition for low resource languages", "protein folding"]
    tokens, digest = _cached_tokens(store, grown)
    assert [path.name for path in folder.glob("selection-*")] == [f"selection-{digest}.npz"]
    monkeypatch.setattr(TokenCache, "shards", lambda self: pytest.fail("the kept selection was not used"))
    again, _ = _cached_tokens(store, grown)
    fresh = tokenize_texts(grown)
    for kept in (tokens, again):
        assert kept.vocabulary.tolist() == fresh.vocabulary.tolist()
        assert kept.tokens.tolist() == fresh.tokens.tolist() and kept.offsets.tolist() == fresh.offsets.tolist()
    monkeypatch.undo()
    for extra in ("one more text", "and another one", "and a third one"):
        grown = [*grown, extra]
        _cached_tokens(store, grown)
    assert len(list(folder.glob("selection-*"))) == TokenCache.SELECTIONS_KEPT


def test_class_weights_are_reused_while_every_paper_keeps_its_topic(tmp_path, monkeypatch):
    from pipeline import label
    from pipeline.runner import _cached_class_weights
    from pipeline.terms import term_counts, tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache")
    counts = term_counts(tokenize_texts(["graph neural networks", "graph networks", "speech recognition"]), [], 1)
    topics = np.array([0, 0, 1])
    first = _cached_class_weights(store, counts, "counts-key", topics, True, 0.1)
    monkeypatch.setattr(label, "class_weights", lambda *args: pytest.fail("computed again"))
    again = _cached_class_weights(store, counts, "counts-key", topics, True, 0.1)
    assert (again != first).nnz == 0 and again.shape == first.shape
    monkeypatch.undo()
    moved = _cached_class_weights(store, counts, "counts-key", np.array([0, 1, 1]), True, 0.1)  # a paper changed topic
    assert (moved != first).nnz > 0
