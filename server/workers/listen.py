"""The supervisor's listening socket, handed to its workers, and a worker's tie to it."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket

BACKLOG = 1024
"""Pending connections the kernel queues for the workers (a worker restarting included)."""

_PR_SET_PDEATHSIG = 1


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``OSError`` when it cannot be had). Workers
    accept on it; it is inheritable so that they can be handed it."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def inherited(fd: int) -> socket.socket:
    """The listening socket a worker was handed as file descriptor ``fd``."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def die_with(supervisor: int) -> None:
    """Ask the kernel to send this worker SIGTERM (a graceful stop) when its supervisor
    dies, even by SIGKILL, so that no orphan keeps serving; exit now if it is already gone.
    Linux only (prctl); elsewhere the worker outlives a killed supervisor."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(libc_name, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the request above took effect
        raise SystemExit("hypertab: error: the supervisor of this worker is gone")
