"""The store's owner lock: one process at a time, and who it is.

LevelDB's own LOCK only says "Resource temporarily unavailable". This lock is taken
first, with ``flock`` on ``<store>/owner.lock``, and holds the owner's pid, so a second
process can say which process to stop. The kernel drops a flock when its holder dies, so
a SIGKILLed owner never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ._errors import StoreLocked


class OwnerLock:
    """An exclusive, non-blocking lock on a store directory.

    Ownership: the lock is held from ``acquire`` until ``release`` or process exit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and record our pid in it.

        Raises:
            StoreLocked: another process holds it (with its pid when readable).
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StoreLocked(pid, str(self.path.parent)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (ValueError, OSError):
        return None
