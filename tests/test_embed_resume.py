"""A killed embed keeps its finished vectors by time as well as by count (issue 28, item 5).

A fake slow backend whose clock advances with each text it embeds: a run killed (SIGKILL, in
a child process) partway through 1,000 texts, far fewer than a shard's count, must have saved
all but about ``SAVE_EVERY_S`` seconds of its work, and the rerun embeds only the rest.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from pipeline.memo import MemoStore
from pipeline.stages.embed import CHUNK_ROWS, SAVE_EVERY_S, SHARD_ROWS, cached_embeddings

ROOT = Path(__file__).resolve().parents[1]
N_TEXTS = 1_000
SECONDS_PER_TEXT = 0.1  # the fake model's speed: 1,000 texts are 100 s of work
KILL_AFTER = 700  # texts embedded when the child is killed: 70 s into the run
CHILD_TIMEOUT_S = 120


class SlowFakeBackend:
    """Vectors from each text's hash; ``clock`` advances ``SECONDS_PER_TEXT`` per text embedded."""

    model_key = "fake-slow"

    def __init__(self, clock: list[float], kill_after: int | None = None) -> None:
        self.clock, self.kill_after, self.embedded = clock, kill_after, 0

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.kill_after is not None and self.embedded + len(texts) > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        self.embedded += len(texts)
        self.clock[0] += SECONDS_PER_TEXT * len(texts)
        return np.vstack([vector(text) for text in texts])


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    row = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return row / np.linalg.norm(row)


def texts() -> list[str]:
    return [f"paper {index}: " + "words " * (index % 37) for index in range(N_TEXTS)]


# The child embeds with the fake backend on a fake clock and SIGKILLs itself partway.
CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from tests.test_embed_resume import KILL_AFTER, SlowFakeBackend, texts
    from pipeline.memo import MemoStore
    from pipeline.stages.embed import cached_embeddings

    clock = [0.0]
    time.monotonic = lambda: clock[0]
    cached_embeddings(MemoStore(Path(sys.argv[1])), SlowFakeBackend(clock, kill_after=KILL_AFTER), texts())
    """
)


def test_a_killed_embed_loses_at_most_the_time_bound_and_the_rerun_embeds_only_the_rest(tmp_path):
    assert N_TEXTS < SHARD_ROWS  # by count alone, nothing would be saved before the kill
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(ROOT)], timeout=CHILD_TIMEOUT_S, capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    clock = [0.0]
    vectors, embedded = cached_embeddings(MemoStore(tmp_path), SlowFakeBackend(clock), texts())
    saved = N_TEXTS - embedded
    done_before_kill = KILL_AFTER - KILL_AFTER % CHUNK_ROWS  # the backend is called a chunk at a time
    lost_seconds = (done_before_kill - saved) * SECONDS_PER_TEXT
    assert saved > 0  # before: "embedded 1000, from_cache 0"
    assert 0 <= lost_seconds <= SAVE_EVERY_S + CHUNK_ROWS * SECONDS_PER_TEXT
    np.testing.assert_array_equal(vectors, np.vstack([vector(text) for text in texts()]))
    # And a third run embeds nothing.
    again, embedded_again = cached_embeddings(MemoStore(tmp_path), SlowFakeBackend([0.0]), texts())
    assert embedded_again == 0 and np.array_equal(again, vectors)


def test_a_fast_backend_still_writes_whole_shards(tmp_path, monkeypatch):
    """With no time passing, shards are cut by count only: no flood of small files."""
    clock = [0.0]
    monkeypatch.setattr("pipeline.memo.time.monotonic", lambda: 0.0)
    progress: list[tuple[int, int]] = []
    many = [f"text {index}" for index in range(SHARD_ROWS + 10)]
    cache = MemoStore(tmp_path)
    _, embedded = cached_embeddings(cache, SlowFakeBackend(clock), many, progress=lambda *p: progress.append(p))
    assert embedded == len(many)
    shards = sorted(cache.folder("embeddings/fake-slow").glob("shard-*.npz"))
    assert len(shards) == 2
    assert progress[-1] == (len(many), len(many)) and len(progress) > 2  # heard of each chunk, not each shard
