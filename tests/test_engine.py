"""The engine: config checks, the local engine, and a real 2-worker Dask LocalCluster.

The Dask tests start one LocalCluster for the module (spawned worker processes: seconds) and
close it at the end; every wait in them has a timeout, so a broken engine fails, never hangs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.cluster.sample_fit import assign_rest
from pipeline.engine import (
    DaskEngine,
    EngineConfig,
    EngineTimeoutError,
    LocalEngine,
    local_workers,
    open_engine,
    worker_cached,
)
from pipeline.errors import PapertopicsError, WorkerDiedError

MAP_TIMEOUT_S = 120.0


# Functions the workers run: module-level, so they pickle by reference.
def square(value: int) -> int:
    return value * value


def scaled_sum(row: np.ndarray, factor: float, offset: float = 0.0) -> float:
    return float(row.sum() * factor + offset)


def fail_on_three(value: int) -> int:
    if value == 3:
        raise ValueError("three is not allowed")
    return value


def pid_and_builds(_item: int, key: str) -> tuple[int, int]:
    """This process's id and how many times the state for ``key`` was built in it so far."""
    state = worker_cached(key, lambda: {"builds": _count_build(key)})
    return os.getpid(), state["builds"]


_BUILDS: dict[str, int] = {}


def _count_build(key: str) -> int:
    _BUILDS[key] = _BUILDS.get(key, 0) + 1
    return _BUILDS[key]


def die_once(value: int, marker: str) -> tuple[int, int]:
    """Kill this worker process the first time any worker runs it; (value * 10, pid) after that."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os._exit(1)
    return value * 10, os.getpid()


def always_die(_value: int) -> int:
    os._exit(1)


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# ---- config ----


def test_engine_config_defaults_to_local_in_process():
    config = EngineConfig()
    assert (config.kind, config.address, config.workers) == ("local", None, "auto")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "spark"}, "kind"),
        ({"kind": "dask", "address": "localhost"}, "tcp://host:8786"),
        ({"kind": "local", "address": "tcp://host:8786"}, "applies to kind 'dask'"),
        ({"kind": "dask", "workers": 0}, "greater than or equal to 1"),
        ({"kind": "dask", "nodes": 3}, "nodes"),
    ],
)
def test_engine_config_rejects_bad_values_naming_them(raw, message):
    with pytest.raises(ValidationError, match=message):
        EngineConfig(**raw)


def test_engine_config_is_frozen_and_accepts_a_scheduler_address():
    config = EngineConfig(kind="dask", address="tcp://10.0.0.5:8786", workers=4)
    assert config.address == "tcp://10.0.0.5:8786"
    with pytest.raises(ValidationError):
        config.workers = 2  # type: ignore[misc]


def test_auto_local_workers_is_one_per_usable_core():
    assert local_workers(EngineConfig(kind="dask", workers=3)) == 3
    assert local_workers(EngineConfig(kind="dask")) == len(os.sched_getaffinity(0))


# ---- local engine ----


def test_local_engine_maps_in_input_order_with_common_arguments():
    with open_engine(EngineConfig()) as engine:
        assert isinstance(engine, LocalEngine)
        rows = [np.full(3, value, dtype=np.float64) for value in (5, 1, 4)]
        assert engine.map(scaled_sum, rows, timeout_s=10, common={"factor": 2.0, "offset": 1.0}) == [31.0, 7.0, 25.0]
        assert engine.map(square, [], timeout_s=10) == []


def test_local_engine_raises_the_functions_own_error_and_checks_the_timeout():
    engine = LocalEngine()
    with pytest.raises(ValueError, match="three is not allowed"):
        engine.map(fail_on_three, [1, 2, 3], timeout_s=10)
    with pytest.raises(ValueError, match="timeout_s"):
        engine.map(square, [1], timeout_s=0)


def test_worker_cached_builds_once_per_key_in_a_process():
    key = f"test-local-{time.monotonic_ns()}"
    results = LocalEngine().map(pid_and_builds, list(range(5)), timeout_s=10, common={"key": key})
    assert results == [(os.getpid(), 1)] * 5
    other = pid_and_builds(0, key + "-other")
    assert other == (os.getpid(), 1)  # a new key builds its own value


# ---- Dask ----


@pytest.fixture(scope="module")
def dask_engine():
    pytest.importorskip("distributed")
    with open_engine(EngineConfig(kind="dask", workers=2)) as engine:
        yield engine


@pytest.mark.slow
def test_dask_engine_runs_on_two_worker_processes_in_input_order(dask_engine):
    assert isinstance(dask_engine, DaskEngine)
    assert dask_engine.n_workers == 2
    items = list(range(40, 0, -1))
    assert dask_engine.map(square, items, timeout_s=MAP_TIMEOUT_S) == [value * value for value in items]
    rows = [np.arange(1000, dtype=np.float64) * value for value in range(6)]
    sums = dask_engine.map(scaled_sum, rows, timeout_s=MAP_TIMEOUT_S, common={"factor": 0.5})
    assert sums == [float(row.sum() * 0.5) for row in rows]


@pytest.mark.slow
def test_dask_engine_loads_worker_state_once_per_worker_process(dask_engine):
    key = f"test-dask-{time.monotonic_ns()}"
    results = dask_engine.map(pid_and_builds, list(range(30)), timeout_s=MAP_TIMEOUT_S, common={"key": key})
    pids = {pid for pid, _ in results}
    assert os.getpid() not in pids  # the parts ran in the worker processes, not here
    assert all(builds == 1 for _, builds in results), results  # built once in each worker, reused after


def assign_part(rows: np.ndarray, sample: np.ndarray, labels: np.ndarray, layout: np.ndarray, rest: np.ndarray):
    return assign_rest(sample, labels, layout, rest[rows], k=10, outlier_percentile=5.0)


@pytest.mark.slow
def test_dask_engine_gives_the_local_engines_arrays_for_the_sampled_fit(dask_engine):
    """The assignment of the sampled fit, in partitions on two workers, equals one call here."""
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 1, (6, 32)) * 3
    sample = centres[rng.integers(0, 6, 600)] + rng.normal(0, 1, (600, 32))
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    labels = np.where(rng.random(600) < 0.2, -1, np.argmax(sample @ centres.T, axis=1))
    layout = rng.normal(0, 1, (600, 2))
    rest = centres[rng.integers(0, 6, 1000)] + rng.normal(0, 1, (1000, 32))
    rest /= np.linalg.norm(rest, axis=1, keepdims=True)
    common = {"sample": sample, "labels": labels, "layout": layout, "rest": rest}
    parts = np.array_split(np.arange(1000), 7)
    local = LocalEngine().map(assign_part, parts, timeout_s=MAP_TIMEOUT_S, common=common)
    remote = dask_engine.map(assign_part, parts, timeout_s=MAP_TIMEOUT_S, common=common)
    for (local_labels, local_layout), (remote_labels, remote_layout) in zip(local, remote, strict=True):
        assert np.array_equal(local_labels, remote_labels)
        assert np.array_equal(local_layout, remote_layout)
    assert len(set(np.concatenate([part_labels for part_labels, _ in remote]).tolist())) > 3


@pytest.mark.slow
def test_dask_engine_raises_the_functions_own_error(dask_engine):
    with pytest.raises(ValueError, match="three is not allowed"):
        dask_engine.map(fail_on_three, [1, 2, 3, 4], timeout_s=MAP_TIMEOUT_S)


@pytest.mark.slow
def test_dask_engine_map_times_out_with_a_clear_error(dask_engine):
    start = time.monotonic()
    with pytest.raises(
        EngineTimeoutError, match=r"sleep_for: \d of 2 parts finished .* within 1 s \(2 worker\(s\) connected\)"
    ):
        dask_engine.map(sleep_for, [30.0, 30.0], timeout_s=1)
    assert time.monotonic() - start < 20  # the wait ended at its timeout, not after the sleeps


@pytest.mark.slow
def test_a_worker_killed_once_is_replaced_and_its_part_retried(dask_engine, tmp_path):
    marker = tmp_path / "died"
    results = dask_engine.map(die_once, [1, 2, 3], timeout_s=MAP_TIMEOUT_S, common={"marker": str(marker)})
    assert marker.read_text() == "died once"  # a worker did die
    assert [value for value, _ in results] == [10, 20, 30]
    dask_engine.client.wait_for_workers(2, timeout=MAP_TIMEOUT_S)  # its nanny starts a new one


@pytest.mark.slow
def test_a_part_that_kills_every_worker_is_one_worker_died_error(dask_engine):
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match="always_die: a part killed 3 workers"):
        dask_engine.map(always_die, [1], timeout_s=MAP_TIMEOUT_S)
    assert time.monotonic() - start < MAP_TIMEOUT_S
    assert dask_engine.map(square, [7], timeout_s=MAP_TIMEOUT_S) == [49]  # the cluster still works


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("pipeline.engine.START_TIMEOUT_S", 3.0)
    with pytest.raises(PapertopicsError, match=r"no Dask scheduler answered at tcp://127\.0\.0\.1:9"):
        with open_engine(EngineConfig(kind="dask", address="tcp://127.0.0.1:9")):
            pass


@pytest.mark.slow
def test_dask_engine_counts_topic_terms_in_parts_as_the_local_engine(dask_engine):
    """The label stage's term counts per topic, counted on two workers and summed: the local engine's."""
    from pipeline.config import LabelConfig
    from pipeline.label.class_counts import class_keywords, counted_in_parts
    from tests.test_class_counts import texts_and_topics

    texts, topics = texts_and_topics(500, seed=9)
    config = LabelConfig()
    local, local_parts = counted_in_parts(texts, topics, config, LocalEngine(), part_papers=60)
    remote, remote_parts = counted_in_parts(texts, topics, config, dask_engine, part_papers=60)
    assert local_parts == remote_parts == 9
    assert remote.vocabulary.tolist() == local.vocabulary.tolist()
    assert (remote.counts != local.counts).nnz == 0 and (remote.holding != local.holding).nnz == 0
    assert class_keywords(remote, config) == class_keywords(local, config)
