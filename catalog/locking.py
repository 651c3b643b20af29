"""Advisory file locks (fcntl), so two processes never write the same state or catalog at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class LockTimeout(Exception):
    """The lock was still held by someone else when the wait ran out."""


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float | None = None, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed); wait up to `timeout` s, forever when None.

    With `shared`, many holders at once (threads too: each holds its own descriptor), none with the exclusive lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
                fcntl.flock(fd, mode | (fcntl.LOCK_NB if deadline is not None else 0))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} is locked by another process") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
