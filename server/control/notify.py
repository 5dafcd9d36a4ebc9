"""Waking the hub processes of a data directory the moment another process revokes.

How it works: every hub process listens on a unix socket of its own under
``<data_dir>/notify/`` (directory 0700, socket 0600). A process that commits revocations
to control.db without a watcher of its own (the CLI) connects to each socket there and
closes it; a hub woken this way polls control.db at once instead of at its next 50 ms
tick. The poke carries no data and is never trusted: the hub only re-reads
``revocation_log``, as its timer would have. A socket left by a dead process refuses the
connection and is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

NOTIFY_DIR = "notify"


def notify_dir(data_dir: Path) -> Path:
    """The directory holding the hubs' wake-up sockets."""
    return data_dir / NOTIFY_DIR


class NotifyListener:
    """A hub's wake-up socket: calls ``on_poke()`` for every connection."""

    def __init__(self, data_dir: Path, on_poke: Callable[[], None]) -> None:
        self.path = notify_dir(data_dir) / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._on_poke = on_poke
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Create the socket. Unix sockets paths are short: skip quietly if too long."""
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if len(os.fsencode(self.path)) >= 100:  # sun_path limit (108 with the NUL)
            log.warning("notify socket path too long; cross-process wake-ups disabled")
            return
        self._server = await asyncio.start_unix_server(self._poked, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def _poked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        self._on_poke()

    async def stop(self) -> None:
        """Close and remove the socket (idempotent)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def poke_all(data_dir: Path, timeout: float = 0.2) -> int:
    """Wake every hub of ``data_dir``; returns how many answered. Never raises."""
    woken = 0
    directory = notify_dir(data_dir)
    try:
        paths = sorted(directory.glob("*.sock"))
    except OSError:
        return 0
    for path in paths:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
                woken += 1
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(OSError):
                        path.unlink()  # left behind by a process that is gone
    return woken
