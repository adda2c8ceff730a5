"""The artifact store: round trips, stage markers, atomic report swap, run lock, the memo of sub-results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import RunLockedError
from pipeline.files import JoinedBytes, array_to_bytes, json_to_bytes, sha256_bytes, table_to_bytes
from pipeline.memo import MemoStore, VectorRows, text_key
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore, stage_cache_key


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)


def test_stage_round_trip_of_every_artifact_kind(store):
    table = pd.DataFrame({"paper_id": pd.Series(["a", "b"], dtype="string"), "topic": [0, -1]})
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    store.save_stage(
        "cluster", "k1", {"t.parquet": table_to_bytes(table), "a.npy": array_to_bytes(array),
                          "m.json": json_to_bytes({"notes": ["x"]})}, 1.5, {"papers": 2},
    )  # fmt: skip
    # Numbered in pipeline order, so that a listing of the run folder reads like the pipeline.
    assert [store.stage_dir(stage).name for stage in STAGE_NAMES] == [
        f"{number:02d}_{stage}" for number, stage in enumerate(STAGE_NAMES, start=1)
    ]
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


def test_a_table_read_has_its_arrow_columns_in_one_chunk_and_the_same_values(store):
    import pyarrow as pa

    from pipeline.files import one_chunk_columns

    n = 140_000  # the parquet reader gives chunks of 131,072 rows
    table = pd.DataFrame({"paper_id": pd.Series([f"p{row}" for row in range(n)], dtype="string"),
                          "topic": np.arange(n) % 7})  # fmt: skip
    store.save_stage("parse", "k1", {"papers.parquet": table_to_bytes(table)}, 1.0, {})
    read = store.read_table("parse", "papers.parquet")
    assert read["paper_id"].array.__arrow_array__().num_chunks == 1
    pd.testing.assert_frame_equal(read, table)
    rows = np.array([139_999, 0, 131_072, 131_071])
    assert read["paper_id"].iloc[rows].tolist() == [f"p{row}" for row in rows.tolist()]
    # A 32-bit-offset string column stays in its chunks (one chunk of it could outgrow its offsets).
    small = pd.arrays.ArrowExtensionArray(pa.chunked_array([pa.array(["a", "b"]), pa.array(["c"])]))
    large = pd.arrays.ArrowExtensionArray(pa.chunked_array([pa.array(["a", "b"], pa.large_string()),
                                                            pa.array(["c"], pa.large_string())]))  # fmt: skip
    joined = one_chunk_columns(pd.DataFrame({"small": small, "large": large}))
    assert joined["small"].array.__arrow_array__().num_chunks == 2
    assert joined["large"].array.__arrow_array__().num_chunks == 1
    assert joined["large"].tolist() == joined["small"].tolist() == ["a", "b", "c"]


def test_a_tables_columns_and_batches_are_its_own_and_a_forgotten_table_is_read_again(store, monkeypatch):
    table = pd.DataFrame({column: pd.Series([f"{column}{row}" for row in range(7)], dtype="string")
                          for column in ("paper_id", "title", "abstract")})  # fmt: skip
    store.save_stage("parse", "k1", {"papers.parquet": table_to_bytes(table)}, 1.0, {})
    only = store.read_table("parse", "papers.parquet", ["paper_id"])
    pd.testing.assert_frame_equal(only, table[["paper_id"]])
    pd.testing.assert_frame_equal(store.read_table("parse", "papers.parquet"), table)  # the whole, not the part
    batches = list(store.table_batches("parse", "papers.parquet", ["title", "abstract"], 3))
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert pd.concat(batches, ignore_index=True)["abstract"].tolist() == table["abstract"].tolist()
    assert list(batches[0].columns) == ["title", "abstract"]
    reads = []
    real_read = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *args, **kwargs: reads.append(args) or real_read(*args, **kwargs))
    store.read_table("parse", "papers.parquet", ["paper_id"])
    assert reads == []  # kept while the stage runs
    store.forget_tables()  # the runner, after each stage: a small table stays for the next stage
    store.read_table("parse", "papers.parquet", ["paper_id"])
    assert reads == []
    monkeypatch.setattr("pipeline.store.KEPT_TABLE_MAX_ROWS", len(table) - 1)
    store.forget_tables()  # a large one is let go
    store.read_table("parse", "papers.parquet", ["paper_id"])
    assert len(reads) == 1
    store.save_stage("parse", "k2", {"papers.parquet": table_to_bytes(table.iloc[:2])}, 1.0, {})
    assert len(store.read_table("parse", "papers.parquet", ["paper_id"])) == 2  # a kept table, rewritten: read again


@pytest.mark.parametrize(
    "array",
    [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0, 4), dtype=np.float32), np.array([True, False]),
     np.arange(24, dtype=np.int64).reshape(2, 3, 4)[:, ::2], np.array(["ab", "c"]), np.float64(2.5)],
)  # fmt: skip
def test_array_bytes_are_what_np_save_writes(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    assert array_to_bytes(array) == buffer.getvalue()


def test_an_object_array_is_refused():
    with pytest.raises(ValueError, match="object"):
        array_to_bytes(np.array(["a", None], dtype=object))


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
    base = stage_cache_key("label", "c1", {"n": 10}, ["h1"])
    assert base == stage_cache_key("label", "c1", {"n": 10}, ["h1"])
    assert base != stage_cache_key("cluster", "c1", {"n": 10}, ["h1"])
    assert base != stage_cache_key("label", "c2", {"n": 10}, ["h1"])
    assert base != stage_cache_key("label", "c1", {"n": 11}, ["h1"])
    assert base != stage_cache_key("label", "c1", {"n": 10}, ["h2"])


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

    monkeypatch.setattr("pipeline.files.atomic_write_bytes", disk_full)
    with pytest.raises(OSError):
        store.publish_report({"index.html": b"new"})
    assert (store.run_dir / "index.html").read_bytes() == b"good"


def test_publish_links_a_file_the_last_report_holds_byte_for_byte_and_writes_every_other(store, monkeypatch):
    monkeypatch.setattr("pipeline.files.COMPARE_BLOCK", 4)  # parts longer than a block: compared a block at a time
    first = {
        "index.html": b"page one",
        "papers.csv": JoinedBytes((b"id,topic\n", b"a,1\nb,2\n")),
        "topics/00-a.csv": b"id\na\n",
        "topics/01-b.csv": b"id\nb\n",
    }
    store.publish_report(first)
    inode = {path: (store.run_dir / path).stat().st_ino for path in first}
    second = {
        "index.html": b"page two",  # same length, other bytes
        "papers.csv": JoinedBytes((b"id,topic\na,1\n", b"b,3\n")),  # other parts, one byte differs at the end
        "topics/00-a.csv": b"id\na\n",
        "topics/01-b.csv": b"id\nb\n",
    }
    store.publish_report(second)
    for path, data in second.items():
        assert (store.run_dir / path).read_bytes() == bytes(data)
    same_inode = {path for path in second if (store.run_dir / path).stat().st_ino == inode[path]}
    assert same_inode == {"topics/00-a.csv", "topics/01-b.csv"}
    third = {**second, "papers.csv": JoinedBytes((b"id,topic\na,1\nb,", b"3\n"))}  # the same bytes, cut elsewhere
    papers_inode = (store.run_dir / "papers.csv").stat().st_ino
    store.publish_report(third)
    assert (store.run_dir / "papers.csv").stat().st_ino == papers_inode
    assert sorted(path.name for path in store.run_dir.iterdir() if path.name.startswith(".")) == []


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


def test_embedding_memo_returns_what_was_computed_and_computes_only_new_texts(tmp_path):
    cache = MemoStore(tmp_path)
    texts = ["one", "two", "three"]
    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    computed: list[list[int]] = []

    def compute(indices):
        computed.append(indices)
        return vectors[indices]

    keys = [text_key(text) for text in texts]
    first, n_first = cache.memo_rows("embeddings/model-a", keys[:2], compute, VectorRows())
    both, n_both = cache.memo_rows("embeddings/model-a", keys, lambda indices: vectors[indices], VectorRows())
    assert (n_first, n_both) == (2, 1)
    np.testing.assert_array_equal(first, vectors[:2])
    np.testing.assert_array_equal(both, vectors)
    assert computed == [[0, 1]]
    # Keyed by model too: another namespace finds nothing.
    _, n_other = cache.memo_rows("embeddings/model-b", keys, lambda indices: vectors[indices], VectorRows())
    assert n_other == 3


def test_a_repeated_text_is_computed_once_and_its_rows_follow_the_keys(tmp_path):
    cache = MemoStore(tmp_path)
    keys = [text_key(text) for text in ("a", "b", "a")]
    rows, computed = cache.memo_rows("embeddings/m", keys, lambda indices: np.eye(3, dtype=np.float32)[indices],
                                     VectorRows())  # fmt: skip
    assert computed == 2
    np.testing.assert_array_equal(rows, np.eye(3, dtype=np.float32)[[0, 1, 0]])


def texts_whose_key_ends_in_nul(count: int) -> list[str]:
    """Texts whose 16-byte cache key ends in a NUL byte (numpy's S16 drops it when read back)."""
    found, i = [], 0
    while len(found) < count:
        text = f"paper number {i}"
        if text_key(text).endswith(b"\0"):
            found.append(text)
        i += 1
    return found


def test_a_text_whose_key_ends_in_a_nul_byte_is_found_again(tmp_path):
    texts = [*texts_whose_key_ends_in_nul(2), "an ordinary text"]
    keys = [text_key(text) for text in texts]
    cache = MemoStore(tmp_path)
    cache.memo_rows("embeddings/model-a", keys, lambda indices: np.eye(3, dtype=np.float32)[indices], VectorRows())
    found, computed = cache.memo_rows(
        "embeddings/model-a", keys, lambda indices: pytest.fail(f"computed again: {indices}"), VectorRows()
    )
    assert computed == 0
    np.testing.assert_array_equal(found[0], [1, 0, 0])


def test_an_unreadable_shard_is_computed_again(tmp_path):
    cache = MemoStore(tmp_path)
    keys = [text_key("one")]
    cache.memo_rows("embeddings/m", keys, lambda indices: np.ones((1, 2), dtype=np.float32), VectorRows())
    for shard in cache.folder("embeddings/m").glob("shard-*.npz"):
        shard.write_bytes(b"not a shard")
    rows, computed = cache.memo_rows("embeddings/m", keys, lambda i: np.full((1, 2), 2, np.float32), VectorRows())
    assert computed == 1 and rows.tolist() == [[2.0, 2.0]]


def test_a_text_whose_key_ends_in_a_nul_byte_is_tokenised_once(tmp_path, monkeypatch):
    from pipeline.label.cache import cached_tokens
    from pipeline.terms import tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)
    texts = [*texts_whose_key_ends_in_nul(1), "graph neural networks"]
    cached_tokens(store.cache, texts)
    tokenised: list[list[str]] = []

    def counting(batch):
        tokenised.append(list(batch))
        return tokenize_texts(batch)

    monkeypatch.setattr("pipeline.terms.tokenize_texts", counting)
    assert cached_tokens(store.cache, [*texts, "protein folding"])[0] is not None
    assert tokenised == [["protein folding"]]


def test_texts_assembled_from_several_token_shards_are_kept_whole_for_the_next_run(tmp_path, monkeypatch):
    from pipeline.label.cache import ASSEMBLED_TOKENS_KEPT, cached_tokens, tokens_namespace
    from pipeline.terms import tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)
    folder = store.cache.folder(tokens_namespace())
    first = [f"graph neural networks paper {i}" for i in range(5)]
    cached_tokens(store.cache, first)
    assert not list(folder.glob("assembled-*"))  # one shard holds exactly these texts: nothing to keep
    grown = [*first, "speech recognition for low resource languages", "protein folding"]
    tokens, keys = cached_tokens(store.cache, grown)
    digest = sha256_bytes(b"".join(keys))
    assert [path.name for path in folder.glob("assembled-*")] == [f"assembled-{digest}.npz"]
    monkeypatch.setattr(Path, "glob", lambda self, pattern: pytest.fail("the kept whole was not used"))
    again, _ = cached_tokens(store.cache, grown)
    monkeypatch.undo()
    fresh = tokenize_texts(grown)
    for kept in (tokens, again):
        assert kept.vocabulary.tolist() == fresh.vocabulary.tolist()
        assert kept.tokens.tolist() == fresh.tokens.tolist() and kept.offsets.tolist() == fresh.offsets.tolist()
    for extra in ("one more text", "and another one", "and a third one"):
        grown = [*grown, extra]
        cached_tokens(store.cache, grown)
    assert len(list(folder.glob("assembled-*"))) == ASSEMBLED_TOKENS_KEPT


def test_a_grown_feed_reads_its_last_assembled_tokens_and_tokenises_only_the_new_texts(tmp_path, monkeypatch):
    from pipeline.label.cache import cached_tokens, tokens_namespace
    from pipeline.terms import tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)
    folder = store.cache.folder(tokens_namespace())
    days = [[f"day {day} paper {i} about graphs" for i in range(3)] for day in range(4)]
    seen: list[str] = []
    for day in range(3):  # three runs of a growing feed: the third is assembled from three shards
        seen += days[day]
        cached_tokens(store.cache, seen)
    # Every shard of the first two days now disagrees with its texts: only the kept whole may be read.
    for shard in folder.glob("shard-*.npz"):
        shard.write_bytes(b"garbage")
    tokenised: list[list[str]] = []

    def counting(batch):
        tokenised.append(list(batch))
        return tokenize_texts(batch)

    monkeypatch.setattr("pipeline.terms.tokenize_texts", counting)
    grown = [*seen, *days[3]]
    tokens, _ = cached_tokens(store.cache, grown)
    assert tokenised == [days[3]]
    fresh = tokenize_texts(grown)
    assert tokens.vocabulary.tolist() == fresh.vocabulary.tolist()
    assert tokens.tokens.tolist() == fresh.tokens.tolist() and tokens.offsets.tolist() == fresh.offsets.tolist()


def test_vector_rows_follow_the_keys_across_overlapping_parts():
    keys = [text_key(text) for text in ("a", "b", "c", *texts_whose_key_ends_in_nul(1))]
    first = (np.array(keys[:2], dtype="S16"), np.array([[1, 1], [2, 2]], dtype=np.float32))
    second = (np.array(keys[1:], dtype="S16"), np.array([[9, 9], [3, 3], [4, 4]], dtype=np.float32))
    rows = VectorRows().take([first, second], [keys[3], keys[1], keys[0], keys[2], keys[3]])
    assert rows.dtype == np.float32
    assert rows.tolist() == [[4, 4], [2, 2], [1, 1], [3, 3], [4, 4]]  # the first part holding "b" wins
    assert VectorRows().take([first], []).shape == (0, 2)
    with pytest.raises(KeyError):
        VectorRows().take([first], [text_key("never stored")])


def test_class_weights_are_reused_while_every_paper_keeps_its_topic(tmp_path, monkeypatch):
    from pipeline import label
    from pipeline.label.cache import cached_class_weights
    from pipeline.terms import term_counts, tokenize_texts

    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)
    counts = term_counts(tokenize_texts(["graph neural networks", "graph networks", "speech recognition"]), [], 1)
    topics = np.array([0, 0, 1])
    first = cached_class_weights(store.cache, counts, "counts-key", topics, True, 0.1)
    monkeypatch.setattr(label, "class_weights", lambda *args: pytest.fail("computed again"))
    again = cached_class_weights(store.cache, counts, "counts-key", topics, True, 0.1)
    assert (again != first).nnz == 0 and again.shape == first.shape
    monkeypatch.undo()
    moved = cached_class_weights(store.cache, counts, "counts-key", np.array([0, 1, 1]), True, 0.1)
    assert (moved != first).nnz > 0  # a paper changed topic


def test_memo_keeps_the_latest_values_and_recomputes_an_unreadable_one(tmp_path):
    cache = MemoStore(tmp_path)
    calls: list[str] = []

    def compute(key):
        calls.append(key)
        return np.full((2, 2), len(calls), dtype=np.float32)

    codec = VectorRows()
    for key in ("a", "b", "c"):
        cache.memo("values", key, lambda key=key: compute(key), codec, keep=2)
    assert sorted(path.stem for path in cache.folder("values").glob("*.npz")) == ["b", "c"]  # the oldest went
    assert cache.memo("values", "c", lambda: compute("c"), codec, keep=2).tolist() == [[3, 3], [3, 3]]
    (cache.folder("values") / "b.npz").write_bytes(b"garbage")
    assert cache.memo("values", "b", lambda: compute("b"), codec, keep=2).tolist() == [[4, 4], [4, 4]]
    assert calls == ["a", "b", "c", "b"]


def test_storing_many_values_lists_the_folder_rarely_and_syncs_nothing(tmp_path, monkeypatch):
    # Issue 28 item 11: every put listed and stat'ed the whole namespace (n² for n input files) and
    # fsync'ed its file: 100,000 one-record files would have taken a day to parse cold.
    import pipeline.memo as memo_module

    listings: list[Path] = []
    real_keep_latest = memo_module._keep_latest
    real_glob = Path.glob

    def counted_glob(self, pattern, *args, **kwargs):
        listings.append(self)
        return real_glob(self, pattern, *args, **kwargs)

    syncs: list[int] = []
    monkeypatch.setattr(Path, "glob", counted_glob)
    monkeypatch.setattr("pipeline.files.os.fsync", lambda descriptor: syncs.append(descriptor))
    prunes: list[int] = []
    monkeypatch.setattr(memo_module, "_keep_latest", lambda *a: prunes.append(1) or real_keep_latest(*a))
    cache, codec = MemoStore(tmp_path), VectorRows()
    for number in range(300):
        cache.put("units", f"k{number:03d}", np.full((1, 1), number, dtype=np.float32), codec, keep=100)
    assert syncs == []
    assert len(listings) <= 1 + 300 // 10 and len(prunes) <= 300 // 10, "the folder is listed on (nearly) every put"
    assert 100 <= len(list(real_glob(cache.folder("units"), "*.npz"))) <= 110  # keep, and at most a tenth more


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_rows_are_written_shard_by_shard_and_a_failed_run_resumes(tmp_path, ahead):
    """With or without shards computed ahead: what finished before a failure is kept, in order."""
    cache = MemoStore(tmp_path)
    keys = [text_key(f"text {i}") for i in range(9)]
    vectors = np.arange(18, dtype=np.float32).reshape(9, 2)

    def fails_on_the_third_shard(indices):
        if indices[0] == 4:
            raise RuntimeError("killed")
        return vectors[indices]

    with pytest.raises(RuntimeError):
        cache.memo_rows("m", keys, fails_on_the_third_shard, VectorRows(), shard_rows=2, ahead=ahead)
    progress: list[tuple[int, int]] = []
    rows, computed = cache.memo_rows(
        "m", keys, lambda indices: vectors[indices], VectorRows(), shard_rows=2, progress=lambda *p: progress.append(p)
    )
    assert computed == 5  # the two shards before the failure were stored, whatever ran beside them
    assert progress == [(2, 5), (4, 5), (5, 5)]
    np.testing.assert_array_equal(rows, vectors)
    # Stored in order: a fresh run with the look-ahead gives the rows in the keys' order.
    fresh, computed = MemoStore(tmp_path / "fresh").memo_rows(
        "m", keys, lambda indices: vectors[indices], VectorRows(), shard_rows=2, ahead=ahead
    )
    assert computed == 9
    np.testing.assert_array_equal(fresh, vectors)


def test_memo_files_are_read_back_exactly_whatever_their_arrays(tmp_path):
    """The one-read npz reader gives what np.load gives: dtypes, shapes, Fortran order, 0-d, compressed members."""
    from pipeline.memo import _npz_bytes, _read_npz

    rng = np.random.default_rng(0)
    arrays = {
        "ints": rng.integers(-5, 5, size=(7, 3)).astype(np.int32),
        "fortran": np.asfortranarray(rng.random((4, 5))),
        "scalar": np.array(12, dtype=np.int64),
        "empty": np.zeros((0, 2), dtype=np.float32),
        "bytes": np.array([b"ab", b"c\0"], dtype="S2"),
        "flags": rng.random(9) > 0.5,
    }
    stored = tmp_path / "stored.npz"
    stored.write_bytes(_npz_bytes(arrays))
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, **arrays)
    for path in (stored, compressed):
        read = _read_npz(path)
        assert list(read) == list(arrays)
        for name, array in arrays.items():
            assert read[name].dtype == array.dtype and read[name].shape == array.shape, name
            np.testing.assert_array_equal(read[name], array)
            assert read[name].flags.writeable
    objects = tmp_path / "objects.npz"
    np.savez(objects, values=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        _read_npz(objects)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(stored.read_bytes()[:-40])
    memo = MemoStore(tmp_path / "cache")
    folder = memo.folder("values")
    folder.mkdir(parents=True)
    (folder / "key.npz").write_bytes(truncated.read_bytes())
    assert memo.memo("values", "key", lambda: np.arange(3), VectorRowsArray()).tolist() == [0, 1, 2]


class VectorRowsArray:
    """A codec of one plain array (for the test above)."""

    def encode(self, value):
        return {"value": value}

    def decode(self, arrays):
        return arrays["value"]


def test_a_memo_file_whose_bytes_changed_inside_an_array_is_computed_again(tmp_path):
    """A flipped byte in a stored member's data (a readable file, sizes intact) fails its CRC-32: never served."""
    from pipeline.memo import _read_npz

    memo = MemoStore(tmp_path / "cache")
    assert memo.memo("values", "key", lambda: np.arange(1000), VectorRowsArray()).tolist() == list(range(1000))
    path = memo.folder("values") / "key.npz"
    data = bytearray(path.read_bytes())
    at = bytes(data).index(np.arange(1000).tobytes()) + 8 * 500  # the value 500, inside the array
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        _read_npz(path)
    assert memo.get("values", "key", VectorRowsArray()) is None
    again = memo.memo("values", "key", lambda: np.arange(1000) * 2, VectorRowsArray())
    assert again[500] == 1000  # recomputed, not the damaged 501
    assert memo.get("values", "key", VectorRowsArray())[500] == 1000


def test_arrays_read_from_a_memo_file_are_private_copies_of_it(tmp_path):
    """Arrays read from a memo file are a private buffer: writing into one never changes the file nor a later read."""
    from pipeline.memo import _npz_bytes, _read_npz

    path = tmp_path / "values.npz"
    path.write_bytes(_npz_bytes({"value": np.arange(1000, dtype=np.int64)}))
    before = path.read_bytes()
    first = _read_npz(path)["value"]
    first[:] = -1  # as code that sums duplicates in place does to a cached matrix
    assert path.read_bytes() == before
    assert _read_npz(path)["value"].tolist() == list(range(1000))
    path.write_bytes(_npz_bytes({"value": np.arange(1000, dtype=np.int64) * 3}))  # the file replaced
    assert first.tolist() == [-1] * 1000
    assert _read_npz(path)["value"][10] == 30
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(EOFError):
        _read_npz(empty)
