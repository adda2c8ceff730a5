"""One part of the report built in a second process while this one builds the rest.

The report is mostly Python (templates, JSON) and holds the GIL, so threads cannot share
its work; a forked child can, without copying the tables it reads (the child sees the
parent's memory as it was at the fork). On 2 cores at 75,000 papers the map and the
charts (about 1.7 s) are built beside the CSVs and the topic pages (as long).

Only where ``fork`` is the platform's own start method (Linux): macOS and Windows spawn
fresh interpreters, which would have to be sent every table, and forking on macOS is
unsafe with its system libraries. There, and for small reports where a fork costs more
than it saves, the part is built in this process, with the same result.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

Result = TypeVar("Result")


def fork_available() -> bool:
    """True where a forked child can build part of the report (Linux)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


@contextlib.contextmanager
def built_beside(build: Callable[[], Result], use_fork: bool) -> Iterator[Callable[[], Result]]:
    """Start ``build()`` in a forked child; the ``with`` block gets a function that waits for its result.

    Without ``use_fork`` (or where :func:`fork_available` is false) ``build()`` runs at once
    in this process. An exception raised by ``build`` in the child is raised again by the
    waiting function; a child that dies without a result raises ``RuntimeError``. Leaving the
    block early (an error in the parent's own part) stops the child.
    """
    if not (use_fork and fork_available()):
        result = build()
        yield lambda: result
        return
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run_and_send, args=(build, sender), daemon=True)
    child.start()
    sender.close()  # the child holds the sending end now: EOF here means it is gone

    def wait() -> Result:
        try:
            status, payload = receiver.recv()
        except EOFError:
            child.join()
            raise RuntimeError(
                f"the process building part of the report ended without a result (exit code {child.exitcode})"
            ) from None
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
