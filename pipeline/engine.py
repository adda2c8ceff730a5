"""Where a stage's parallel parts run: in this process, or on Dask workers.

A stage that can split its work (parse per input file, embed per partition of papers, the
sampled fit's assignment per block) hands the parts to an :class:`Engine` and gets the
results back in input order, whichever engine runs them::

    with open_engine(EngineConfig(kind="dask")) as engine:
        vectors = engine.map(embed_partition, partitions, timeout_s=3600, common={"config": embed_config})

- ``kind: local`` (the default) calls the function on each item in this process, one after
  the other: today's code path, nothing started.
- ``kind: dask`` runs the parts on a ``dask.distributed`` cluster: a ``LocalCluster`` of
  worker processes on this machine when ``address`` is null, else the scheduler at
  ``address`` (a cluster the user already runs, or one started through dask-jobqueue on
  SLURM/PBS).

Every wait has a timeout: starting the cluster, reaching a scheduler (``connect_timeout_s``),
waiting for workers, and each ``map`` (``timeout_s``). Before Dask connects to an address,
:func:`check_scheduler` hears the scheduler's greeting on a plain socket: a service that is
not Dask is one line, never Dask reading its bytes as a message length (an allocation of
exabytes, "Maximum allowed dimension exceeded"). A LocalCluster keeps its workers' scratch
space under the folder it is given (the run's cache folder), not ``$TMPDIR``.

A worker that dies while computing a part (killed, out of memory)
is replaced by its nanny and the part is computed again on another worker, up to
``ALLOWED_FAILURES`` times; a part that keeps killing its workers raises one
:class:`~pipeline.errors.WorkerDiedError`. An exception raised by the function itself is
raised again here, unchanged.

A run hands its stages one engine (:func:`run_engine`, ``StageContext.engine``): a Dask cluster
starts when a stage first hands it work and closes when that stage ends.

State a worker should load once (an embedding model) goes through :func:`worker_cached`:
one value per key per process, so once per Dask worker process and once in this process
for the local engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pipeline.config import EngineConfig
from pipeline.errors import PapertopicsError, WorkerDiedError

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Seconds to start a LocalCluster, reach a scheduler, or see the workers asked for: on a busy
# 2-core machine two spawned workers importing numpy/pandas take about 10 s.
START_TIMEOUT_S = 120.0
# Seconds to close the client and the cluster: closing never hangs the end of a run.
CLOSE_TIMEOUT_S = 30.0
# Times a part is computed again after its worker died (Dask's scheduler setting
# distributed.scheduler.allowed-failures, 3 by default): a worker killed from outside once
# costs a retry, a part that kills every worker it lands on fails after 3 deaths, not 4.
# Applies to the LocalCluster started here; a cluster at ``address`` keeps its own setting.
ALLOWED_FAILURES = 2
# A Dask scheduler greets each connection with one small message, its length first as 8 bytes
# (distributed.comm.tcp: struct "Q"): a few hundred bytes. Anything longer is not Dask.
MAX_GREETING_BYTES = 1 << 20


class EngineTimeoutError(PapertopicsError):
    """A wait on the engine (cluster start, workers, a map) ran past its timeout."""


class Engine(Protocol):
    """Runs ``fn`` on each item, somewhere; results come back in input order."""

    @property
    def n_workers(self) -> int:
        """How many parts run at once: split work into at least this many."""

    def map(
        self,
        fn: Callable[..., Result],
        items: Sequence[Item],
        *,
        timeout_s: float,
        common: Mapping[str, Any] | None = None,
    ) -> list[Result]:
        """``[fn(item, **common) for item in items]``; ``common`` is sent to each worker once."""

    def release(self) -> None:
        """No more work for now: let go of the workers this engine started, if any (a later map starts others)."""


class LocalEngine:
    """Every part in this process, in order: the default engine, nothing to start or wait for."""

    @property
    def n_workers(self) -> int:
        return 1

    def map(
        self,
        fn: Callable[..., Result],
        items: Sequence[Item],
        *,
        timeout_s: float,
        common: Mapping[str, Any] | None = None,
    ) -> list[Result]:
        """Call ``fn`` on each item here; ``timeout_s`` is not needed in-process (nothing is waited on)."""
        _check_timeout(timeout_s)
        return [fn(item, **(common or {})) for item in items]

    def release(self) -> None:
        """Nothing to let go: every part ran in this process."""


class DaskEngine:
    """Parts run on a dask.distributed cluster through ``client``."""

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        self.where = where  # for messages: "a local cluster of 2 workers" or the address

    @property
    def n_workers(self) -> int:
        return max(1, self.n_workers_now())

    def n_workers_now(self) -> int:
        """Workers connected to the scheduler at this moment (0 while all are being replaced)."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def release(self) -> None:
        """Nothing to let go here: the cluster is the ``with`` block's that opened it (``open_engine``)."""

    def map(
        self,
        fn: Callable[..., Result],
        items: Sequence[Item],
        *,
        timeout_s: float,
        common: Mapping[str, Any] | None = None,
    ) -> list[Result]:
        """Submit one task per item and gather the results in input order within ``timeout_s`` seconds.

        Raises:
            WorkerDiedError: a part's worker died ``ALLOWED_FAILURES`` + 1 times (or the
                scheduler went away) before it finished.
            EngineTimeoutError: the parts did not all finish within ``timeout_s``.
        """
        import distributed
        from distributed.scheduler import KilledWorker

        _check_timeout(timeout_s)
        if not items:
            return []
        name = getattr(fn, "__name__", type(fn).__name__)
        # ``common`` goes to the cluster as tasks, not scattered data: a task's result that was on a
        # worker that died is computed again from the task, where scattered data would be lost for
        # good ("the cluster lost scattered data") when its one holder died before others had it.
        shared = {key: self.client.submit(_value, value, pure=False) for key, value in (common or {}).items()}
        # One wrapper call per item: ``common``'s names never meet client.map's own keywords (key, workers...).
        futures = self.client.map(_call_with, list(items), function=fn, common=shared, pure=False)
        try:
            try:
                distributed.wait(futures, timeout=timeout_s)
            except TimeoutError:
                finished = sum(future.done() for future in futures)
                raise EngineTimeoutError(
                    f"{name}: {finished} of {len(futures)} parts finished on {self.where} within {timeout_s:g} s "
                    f"({self.n_workers_now()} worker(s) connected): raise the timeout, add workers or split the work"
                ) from None
            return self.client.gather(futures)
        except KilledWorker as exc:
            raise WorkerDiedError(
                f"{name}: a part killed {ALLOWED_FAILURES + 1} workers of {self.where} in turn (out of memory, or a "
                f"crash in native code?): {exc}; run again to resume from the last finished stage"
            ) from None
        except distributed.client.FutureCancelledError as exc:
            raise WorkerDiedError(
                f"{name}: {self.where} dropped the work before it finished (scheduler gone?): {exc}"
            ) from None
        finally:
            self.client.cancel(futures)
            for future in shared.values():
                future.release()


class RunEngine:
    """The engine of a run's stages: started when a stage first hands it work, closed by :meth:`release`.

    The runner closes it after each stage that may use it (``Stage.uses_engine``), so a stage
    that needs no workers (all from the cache, or too small to split) starts none, and no stage
    inherits the memory an earlier one left in the workers' heaps.
    """

    def __init__(self, config: EngineConfig, scratch: Path | None = None) -> None:
        self.config = config
        self.scratch = scratch
        self._stack = contextlib.ExitStack()
        self._engine: Engine | None = None

    def _open(self) -> Engine:
        if self._engine is None:
            self._engine = self._stack.enter_context(open_engine(self.config, scratch=self.scratch))
        return self._engine

    @property
    def n_workers(self) -> int:
        return self._open().n_workers

    def map(
        self,
        fn: Callable[..., Result],
        items: Sequence[Item],
        *,
        timeout_s: float,
        common: Mapping[str, Any] | None = None,
    ) -> list[Result]:
        return self._open().map(fn, items, timeout_s=timeout_s, common=common)

    def release(self) -> None:
        """Close the cluster if one was started (a later use starts another)."""
        self._engine = None
        self._stack.close()


@contextlib.contextmanager
def run_engine(config: EngineConfig, scratch: Path | None = None) -> Iterator[Engine]:
    """The engine a run's stages share, for the run's ``with`` block.

    The local engine, or a :class:`RunEngine` of Dask workers, closed when the block ends;
    ``scratch``: the folder a LocalCluster's workers keep their scratch space in.
    """
    if config.kind == "local":
        yield LocalEngine()
        return
    engine = RunEngine(config, scratch)
    try:
        yield engine
    finally:
        engine.release()


@contextlib.contextmanager
def open_engine(config: EngineConfig, scratch: Path | None = None) -> Iterator[Engine]:
    """The engine ``config`` asks for, open for the ``with`` block and closed after it.

    ``scratch``: the folder a LocalCluster's workers keep their scratch space in (Dask's
    ``local_directory``; None = Dask's default, ``$TMPDIR/dask-scratch-space``).

    Raises:
        PapertopicsError: dask is not installed, or no Dask scheduler answers at ``config.address``
            within ``config.connect_timeout_s``.
        EngineTimeoutError: the cluster or its workers were not there within ``START_TIMEOUT_S``.
    """
    if config.kind == "local":
        yield LocalEngine()
        return
    with _dask_client(config, scratch) as (client, where):
        yield DaskEngine(client, where)


def local_workers(config: EngineConfig) -> int:
    """Worker processes of a LocalCluster: ``workers``, or one per CPU core when it is "auto"."""
    if config.workers != "auto":
        return config.workers
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(1, len(cores))


@contextlib.contextmanager
def _dask_client(config: EngineConfig, scratch: Path | None) -> Iterator[tuple[Any, str]]:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise PapertopicsError(
            f"engine.kind 'dask' needs dask.distributed, which is not installed ({exc}): "
            "pip install 'dask[distributed]', or set engine.kind: local"
        ) from None
    with contextlib.ExitStack() as stack:
        if config.address is None:
            n_workers = local_workers(config)
            where = f"a local Dask cluster of {n_workers} worker process(es)"
            settings: dict[str, Any] = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}
            if scratch is not None:  # the scheduler's and the nannies' scratch folders too, not only the workers'
                settings["temporary-directory"] = str(scratch)
            with dask.config.set(settings):
                try:
                    cluster = distributed.LocalCluster(
                        n_workers=n_workers,
                        threads_per_worker=1,  # one part per process: numba and BLAS use their own threads
                        processes=True,
                        dashboard_address=None,
                        timeout=START_TIMEOUT_S,
                        local_directory=None if scratch is None else str(scratch),
                    )
                except TimeoutError:
                    raise EngineTimeoutError(f"{where} did not start within {START_TIMEOUT_S:g} s") from None
            stack.callback(cluster.close, timeout=CLOSE_TIMEOUT_S)
            client = distributed.Client(cluster, timeout=START_TIMEOUT_S)
        else:
            where = f"the Dask scheduler at {config.address}"
            check_scheduler(config.address, config.connect_timeout_s)
            try:
                client = distributed.Client(config.address, timeout=config.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                raise PapertopicsError(
                    f"engine.address: no Dask scheduler answered at {config.address} ({exc}); "
                    "start one (dask scheduler) or fix the address"
                ) from None
        stack.callback(client.close, timeout=CLOSE_TIMEOUT_S)
        wanted = 1 if config.workers == "auto" or config.address is None else config.workers
        try:
            client.wait_for_workers(wanted, timeout=START_TIMEOUT_S)
        except TimeoutError:
            raise EngineTimeoutError(
                f"{where}: fewer than {wanted} worker(s) connected within {START_TIMEOUT_S:g} s"
            ) from None
        log.info("engine: %s", where)
        yield client, where


def check_scheduler(address: str, timeout_s: float) -> None:
    """Raise PapertopicsError unless a Dask scheduler greets a plain connection to ``address`` within ``timeout_s``.

    ``address`` is "tcp://host:port" (the config allows no other scheme). Reads only the
    greeting's 8-byte length, so a service that is not Dask costs nothing to find out.
    """
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 address: tcp://[::1]:8786
    fix = "start one (dask scheduler) or fix the address"
    try:
        connection = socket.create_connection((host, int(port)), timeout=timeout_s)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise PapertopicsError(
            f"engine.address: no Dask scheduler answered at {address} within {timeout_s:g} s ({reason}); {fix}"
        ) from None
    with connection:
        greeting = b""
        try:
            while len(greeting) < 8:
                received = connection.recv(8 - len(greeting))
                if not received:
                    break
                greeting += received
        except OSError as exc:
            said = f"sent nothing within {timeout_s:g} s" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            raise PapertopicsError(
                f"engine.address: {address} answered but is no Dask scheduler ({said}); {fix}"
            ) from None
    if len(greeting) < 8:
        raise PapertopicsError(f"engine.address: {address} closed the connection without a Dask greeting; {fix}")
    (size,) = struct.unpack("<Q", greeting)
    if not 0 < size <= MAX_GREETING_BYTES:
        raise PapertopicsError(
            f"engine.address: {address} answered but is no Dask scheduler (its first bytes, {greeting!r}, are not "
            f"a Dask greeting); {fix}"
        )


_worker_state: dict[str, Any] = {}
_worker_state_lock = threading.Lock()


def worker_cached(key: str, build: Callable[[], Result]) -> Result:
    """The value for ``key`` in this process, built by ``build()`` the first time it is asked for.

    A function running on a worker loads heavy state (an embedding backend) through this, so
    each worker process loads it once, not once per part. ``key`` must name everything the
    value depends on (the backend's model key, say): a different key builds a new value.
    """
    with _worker_state_lock:
        if key not in _worker_state:
            _worker_state[key] = build()
        return _worker_state[key]


def _value(value: Result) -> Result:
    """``value`` itself: a task whose result is a value every part needs (recomputed if its worker dies)."""
    return value


def _call_with(item: Any, function: Callable[..., Result], common: Mapping[str, Any]) -> Result:
    """``function(item, **common)`` on a worker, once Dask has replaced the futures in ``common`` by their values."""
    return function(item, **common)


def _check_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s}")
