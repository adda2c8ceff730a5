"""One run at a time writes a run folder: an exclusive ``flock`` on ``<run>/.lock``.

The pid is written inside, for the message; the kernel drops the lock when its process dies,
however it dies (SIGKILL included), so a dead run never blocks the next one. The lock file is
never opened through a link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import OutputError, RunLockedError
from pipeline.files import output_error

LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock, creating the folder first.

    Raises RunLockedError when another process holds it, OutputError when the run folder
    cannot be created or the lock written (a disk with 0 bytes free included).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(run_dir, exc) from exc
    lock_path = run_dir / LOCK_FILE
    descriptor = _take_lock(lock_path, run_dir)
    try:
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, str(os.getpid()).encode())
        except OSError as exc:  # a disk with 0 bytes free: the same line as any other full-disk write
            raise output_error(lock_path, exc) from exc
        yield
    finally:
        # Unlink while still holding the lock, so no one locks a file that is gone.
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(descriptor)


def _take_lock(lock_path: Path, run_dir: Path) -> int:
    """An open descriptor of ``lock_path`` holding its exclusive flock."""
    while True:
        try:
            # Never through a link: "ftruncate + write pid" would clobber the file it points to.
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(
                    f"{lock_path}: is a symbolic link; the run lock must be a plain file "
                    "(delete the link and run again)"
                ) from None
            raise output_error(lock_path, exc) from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(lock_path)
            os.close(descriptor)
            raise RunLockedError(
                f"{run_dir}: another papertopics run (pid {holder or 'unknown'}) is writing here; "
                "wait for it to finish or use another output folder"
            ) from None
        # The holder we waited on may have unlinked the file before we locked it: then the
        # lock is on a file no one else will open, so start again with the current one.
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            os.close(descriptor)
            continue
        opened = os.fstat(descriptor)
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return descriptor
        os.close(descriptor)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
