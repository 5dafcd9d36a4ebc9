"""The supervisor's listening sockets, handed to its workers, and a worker's tie to them.

Where the kernel balances ``SO_REUSEPORT`` groups (Linux), each worker slot accepts on a
listening socket of its own and the kernel hashes every new connection to one of them, so
the workers hold even shares: one shared socket let whichever worker woke first drain the
queue (measured on 5 workers: 4,162 to 13,579 of 40,000 connections, so that one worker
reached the file limit at 95,000 while the others had room). The supervisor binds them
all itself, so a port in use is one error before any worker starts, and holds one more
socket on the port that never listens, so the port stays reserved while every worker is
down. Elsewhere the workers share one socket as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import Any

BACKLOG = 1024
"""Pending connections the kernel queues per listening socket."""

_PR_SET_PDEATHSIG = 1


def balances() -> bool:
    """Whether this kernel spreads connections over an ``SO_REUSEPORT`` group (Linux)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def _socket(family: int, address: Any, *, reuse_port: bool, listen: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Listeners:
    """The listening sockets of worker slots ``1..count`` on ``host:port`` (``OSError``
    when the port cannot be had): :meth:`open` gives the descriptor to hand a slot's
    worker."""

    def __init__(self, host: str, port: int, count: int) -> None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        self._family: int = family
        self.balanced = balances()
        if self.balanced:
            # A plain bind first: it fails when anything holds the port, even another
            # server of this user in a reuseport group of its own (which a reuseport bind
            # would silently join). Then the reservation: bound, never listening, so the
            # kernel hands it no connection.
            with _socket(self._family, address, reuse_port=False, listen=False) as probe:
                address = probe.getsockname()  # --port 0: the port picked, for all
        self._base = _socket(
            self._family, address, reuse_port=self.balanced, listen=not self.balanced
        )
        self.address: Any = self._base.getsockname()
        self._slots: dict[int, socket.socket] = {}
        try:
            for slot in range(1, count + 1):
                self.open(slot)
        except BaseException:
            self.close()
            raise

    @property
    def port(self) -> int:
        port: int = self.address[1]
        return port

    def open(self, slot: int) -> int:
        """The descriptor worker slot ``slot`` accepts on (its own socket, made now if it
        has none: ``OSError`` when it cannot be bound)."""
        if not self.balanced:
            return self._base.fileno()
        sock = self._slots.get(slot)
        if sock is None:
            sock = _socket(self._family, self.address, reuse_port=True, listen=True)
            self._slots[slot] = sock
        return sock.fileno()

    def release(self, slot: int) -> None:
        """Slot ``slot``'s worker died: close its socket, so that new connections go to the
        other workers until it is back. Connections already queued on it are reset (with
        ``net.ipv4.tcp_migrate_req = 1`` the kernel moves them to another worker)."""
        sock = self._slots.pop(slot, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for slot in list(self._slots):
            self.release(slot)
        self._base.close()


def inherited(fd: int) -> socket.socket:
    """The listening socket a worker was handed as file descriptor ``fd``."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def die_with(supervisor: int) -> None:
    """Ask the kernel to send this worker SIGTERM (a graceful stop) when its supervisor
    dies, even by SIGKILL, so that no orphan keeps serving; exit now if it is already gone.
    Linux only (prctl); elsewhere the worker outlives a killed supervisor."""
    import ctypes.util  # here: a process that is no worker does without ctypes (~0.3 MB)

    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(libc_name, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the request above took effect
        raise SystemExit("hypertab: error: the supervisor of this worker is gone")
