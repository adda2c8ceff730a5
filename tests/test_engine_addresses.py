"""Dask addresses a user can get wrong (issue 28, item 9), and where a LocalCluster keeps its scratch space.

Nothing listening, a service that says nothing, one that says something else (ssh, http, random
bytes) and ``tls://`` are each one line, said within ``engine.connect_timeout_s``, and Dask never
reads a stranger's bytes. The LocalCluster test starts 2 workers of 1 thread and closes them; every
wait has a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import EngineConfig, parse_config
from pipeline.engine import check_scheduler, open_engine
from pipeline.errors import ConfigError, PapertopicsError

MAP_TIMEOUT_S = 120.0
THREAD_JOIN_S = 10.0


@contextlib.contextmanager
def tcp_service(greeting: bytes | None, close_at_once: bool = False) -> Iterator[str]:
    """A plain TCP service on 127.0.0.1 that sends ``greeting`` to each connection (None: nothing); its address."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop, connections = threading.Event(), []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connections.append(connection)
            if greeting is not None:
                connection.sendall(greeting)
            if close_at_once:
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(THREAD_JOIN_S)
        server.close()
        for connection in connections:
            connection.close()


@pytest.fixture
def dask_must_not_connect(monkeypatch):
    """A stranger's bytes never reach Dask's reader (which took them for a message length)."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "Client", lambda *_args, **_kwargs: pytest.fail("Dask connected to a stranger"))


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_nothing_listening_is_one_line_naming_the_timeout(dask_must_not_connect):
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(PapertopicsError, match=r"no Dask scheduler answered at tcp://127\.0\.0\.1:\d+ within 2 s \("):
        with open_engine(EngineConfig(kind="dask", address=address, connect_timeout_s=2)):
            pass


def test_a_service_that_says_nothing_is_one_line_after_the_connect_timeout(dask_must_not_connect):
    with tcp_service(None) as address:
        with pytest.raises(PapertopicsError, match=r"answered but is no Dask scheduler \(sent nothing within 0\.5 s\)"):
            with open_engine(EngineConfig(kind="dask", address=address, connect_timeout_s=0.5)):
                pass


@pytest.mark.parametrize(
    "greeting",
    [b"\xff" * 16, b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\0" * 8],
    ids=["random bytes (an exabyte length)", "ssh", "http", "a zero length"],
)
def test_a_service_that_is_not_dask_is_one_line(dask_must_not_connect, greeting):
    with tcp_service(greeting) as address:
        with pytest.raises(PapertopicsError, match=r"answered but is no Dask scheduler \(its first bytes, b'"):
            with open_engine(EngineConfig(kind="dask", address=address, connect_timeout_s=5)):
                pass


def test_a_service_that_hangs_up_is_one_line(dask_must_not_connect):
    with tcp_service(b"", close_at_once=True) as address:
        with pytest.raises(PapertopicsError, match=r"closed the connection without a Dask greeting"):
            check_scheduler(address, 5)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("tls://10.0.0.5:8786", "TLS needs certificates, which papertopics does not configure"),
        ("ws://10.0.0.5:8786", "is no scheduler address: write it as 'tcp://host:8786'"),
        ("ucx://10.0.0.5:8786", "is no scheduler address"),
    ],
)
def test_an_address_dask_would_not_reach_over_tcp_is_refused_at_load(address, message):
    with pytest.raises(ValidationError, match=message):
        EngineConfig(kind="dask", address=address)
    with pytest.raises(ConfigError, match=rf"key 'engine\.address': .*{message}"):
        parse_config({"name": "x", "inputs": ["a.csv"], "engine": {"kind": "dask", "address": address}})


def test_the_connect_timeout_is_bounded_and_defaults_to_ten_seconds():
    assert EngineConfig().connect_timeout_s == 10.0
    for bad in (0, -1, 1e308):
        with pytest.raises(ValidationError, match="connect_timeout_s"):
            EngineConfig(kind="dask", connect_timeout_s=bad)


# Runs on a worker: module-level, so it pickles by reference.
def scratch_folder(_item: int) -> str:
    import distributed

    return distributed.get_worker().local_directory


@pytest.mark.slow
def test_a_local_cluster_keeps_its_scratch_space_in_the_given_folder(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again here and in the spawned workers
    scratch = tmp_path / "out" / ".cache" / "dask"
    with open_engine(EngineConfig(kind="dask", workers=2), scratch=scratch) as engine:
        folders = engine.map(scratch_folder, list(range(8)), timeout_s=MAP_TIMEOUT_S)
        # The real scheduler's greeting passes the check, and a second client reaches it by address.
        address = engine.client.scheduler.address  # type: ignore[attr-defined]
        check_scheduler(address, 10)
        with open_engine(EngineConfig(kind="dask", address=address, workers=2, connect_timeout_s=10)) as by_address:
            assert by_address.map(scratch_folder, [0, 1], timeout_s=MAP_TIMEOUT_S)[0].startswith(str(scratch))
    assert len(folders) == 8 and all(Path(folder).is_relative_to(scratch) for folder in folders)
    assert not (tmp_path / "tmp" / "dask-scratch-space").exists()


def test_a_run_hands_its_engine_the_cache_folder_for_scratch(tmp_path, monkeypatch):
    import pipeline.runner as runner

    (tmp_path / "papers.csv").write_text("title,abstract\nA paper title,An abstract of the paper\n")
    config = parse_config(
        {"name": "x", "output_dir": str(tmp_path / "out"), "inputs": [str(tmp_path / "papers.csv")],
         "engine": {"kind": "dask", "workers": 2}}
    )  # fmt: skip
    seen = []

    def run_engine(engine_config, scratch=None):
        seen.append(scratch)
        raise PapertopicsError("stop here")

    monkeypatch.setattr(runner, "run_engine", run_engine)
    with pytest.raises(PapertopicsError, match="stop here"):
        runner.run_pipeline(config)
    assert seen == [config.cache_dir / "dask"]
