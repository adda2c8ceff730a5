"""One part of a stage's work computed in a second process while this one does the rest.

Two places use it, both because 2 cores are there and one of them would sit idle:

- the report is mostly Python (templates, JSON) and holds the GIL, so threads cannot share its
  work; a *forked* child can, without copying the tables it reads (the child sees the parent's
  memory as it was at the fork). Forking is used only where it is the platform's own start
  method (Linux): macOS and Windows spawn fresh interpreters, which would have to be sent every
  table, and forking on macOS is unsafe with its system libraries;
- the cluster stage's 2-D map layout (seeded UMAP optimises on one core) runs in a *spawned*
  child beside the 5-D layout and HDBSCAN: numba's OpenMP threads, started by the neighbour
  search, do not survive a fork, and the arrays it needs are small enough to send.

With no start method the part is built in this process, with the same result.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Literal, TypeVar

from pipeline.errors import WorkerDiedError

Result = TypeVar("Result")
Item = TypeVar("Item")
CHILD_POLL_S = 0.5  # how often a waiting parent checks that its child is still alive
StartMethod = Literal["fork", "spawn"]


def fork_available() -> bool:
    """True where a forked child can build part of the work (Linux)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


@contextlib.contextmanager
def built_beside(
    build: Callable[[], Result], start_method: StartMethod | None, what: str = "part of the report"
) -> Iterator[Callable[[], Result]]:
    """Start ``build()`` in a child process; the ``with`` block gets a function that waits for its result.

    ``start_method`` None runs ``build()`` at once in this process; "fork" falls back to that
    where :func:`fork_available` is false; "spawn" needs a picklable ``build`` (a module-level
    function or a ``functools.partial`` of one). An exception raised by ``build`` in the child
    is raised again by the waiting function; a child that dies without a result (killed, out of
    memory) raises :class:`WorkerDiedError` naming ``what`` it was computing. Leaving the block
    early (an error in the parent's own part) stops the child.
    """
    if start_method is None or (start_method == "fork" and not fork_available()):
        result = build()
        yield lambda: result
        return
    context: Any = multiprocessing.get_context(start_method)  # typeshed: BaseContext has no Process
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run_and_send, args=(build, sender), daemon=True)
    child.start()
    sender.close()  # the child holds the sending end now: EOF here means it is gone

    def died() -> WorkerDiedError:
        child.join()
        return WorkerDiedError(
            f"the process computing {what} ended without a result (exit code {child.exitcode}; "
            "killed, or out of memory?); run again to resume from the last finished stage"
        )

    def wait() -> Result:
        # Polled, not a bare recv(): a copy of the sending end left open in this process (the
        # spawn machinery duplicates it) would keep recv() from ever seeing the child's death.
        while not receiver.poll(CHILD_POLL_S):
            if not child.is_alive() and not receiver.poll(0):
                raise died()
        try:
            status, payload = receiver.recv()
        except EOFError:
            raise died() from None
        child.join()
        if status == "error":
            raise payload
        return payload

    try:
        yield wait
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
            child.join()


def _run_and_send(build: Callable[[], Any], sender: Any) -> None:
    try:
        result = ("ok", build())
    except Exception as exc:  # sent to the parent, which raises it
        result = ("error", exc)
    sender.send(result)
    sender.close()


def release_joblib_workers() -> None:
    """Stop joblib's reusable worker processes, when any were started (HDBSCAN's core distances).

    Idle, they outlive their task by 300 s with what they held: at a million papers they sat
    beside the label and report stages (7 processes at the run's 20.8 GB peak, docs/scale.md).
    The next joblib call starts new ones.
    """
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True)


def return_freed_memory(collect: bool = True) -> None:
    """Hand the memory a finished stage freed back to the system, so the next stage starts low.

    Freed memory stays with the allocator that had it: Arrow's pool (the tables) and the C
    heap (numpy, Python). At a million papers the report stage started gigabytes higher after
    the earlier stages in one process than on its own (docs/scale.md). Only the C heap of
    glibc can be trimmed; elsewhere (musl, macOS, Windows) that part is left as it is.
    ``collect`` False skips the collection of reference cycles, which visits every object of the
    process (0.1-0.5 s in a Dask worker): for a task run hundreds of times that leaves none.
    """
    import ctypes
    import gc

    import pyarrow as pa

    if collect:
        gc.collect()  # objects in reference cycles (frames, closures) a stage left: freed before the trim
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return  # not glibc
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)


def computed_in_order(
    compute: Callable[[Item], Result], items: Iterable[Item], ahead: int, first_alone: bool = True
) -> Generator[Result, None, None]:
    """``compute(item)`` for each item, in order, with up to ``ahead`` of the next items started before it is used.

    With ``ahead`` 0 each item is computed when its result is asked for. Otherwise the first item
    is computed alone (whatever it starts, such as a Dask cluster or a model build, is started
    once), then up to ``ahead`` more run in threads while the caller uses a result: a driver that
    stores one shard while the workers embed the next keeps both busy. ``first_alone`` False
    starts the first ``ahead`` items at once (what they need is started already). ``compute`` must
    be safe to call from several threads at once after its first call. An error is raised where its
    item's result is asked for; the items started after it are cancelled or waited for.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    iterator = iter(items)
    if ahead <= 0:
        yield from (compute(item) for item in iterator)
        return
    first: Any = _END
    if first_alone:
        first = next(iterator, _END)
        if first is _END:
            return
        first = compute(first)
    pending: collections.deque[Future[Result]] = collections.deque()
    pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="computed_in_order")
    try:
        for item in itertools.islice(iterator, ahead):
            pending.append(pool.submit(compute, item))
        if first is not _END:
            yield first
        while pending:
            result = pending.popleft().result()
            following = next(iterator, _END)
            if following is not _END:
                pending.append(pool.submit(compute, following))  # type: ignore[arg-type]
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()  # the end of ``computed_in_order``'s items
