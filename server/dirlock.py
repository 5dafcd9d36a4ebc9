"""Who may serve a data directory: one hub alone, or any number that share a Redis.

How it works: ``hypertab serve`` holds an ``fcntl.flock`` on ``<data_dir>/hub.lock`` for its
whole life. A hub without ``HYPERTAB_REDIS_URL`` takes it *exclusive*: its changes reach only
its own subscribers, so a second process on the same data would leave each one's clients
blind to the other's edits. Hubs with Redis take it *shared*: they broadcast to each other,
and the only thing refused is mixing them with a hub that does not. The kernel releases a
flock when its process dies, ``kill -9`` included, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "hub.lock"


class DataDirInUse(Exception):
    """Another hub process serves this data directory in a way this one cannot join."""


class DataDirLock:
    """The held lock; :meth:`release` (idempotent) or process exit lets it go."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path, *, shared: bool) -> DataDirLock:
        """Take the lock without waiting; :class:`DataDirInUse` with the fix when refused."""
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if shared:
                raise DataDirInUse(
                    f"data directory {data_dir} is in use by a hub process running without "
                    "HYPERTAB_REDIS_URL; stop it, or restart it with the same "
                    "HYPERTAB_REDIS_URL so both share broadcasts"
                ) from None
            raise DataDirInUse(
                f"data directory {data_dir} is in use by another hub process; stop it, or "
                "set HYPERTAB_REDIS_URL (the same Redis) on every process serving it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    def release(self) -> None:
        """Let the lock go (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
