"""A server's processes and what they spend, summed: one process, or a supervisor with its
workers (``serve --workers N``) and whatever else counts as the server (its redis-server).

Shared by bench/connections.py, bench/fanout.py and bench/handshake.py, so that "the
server's CPU" and "the server's RSS" mean the same in every figure they print.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil  # type: ignore[import-untyped]


def tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and every process under it (just ``root`` once it has gone)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [root]


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs``, summed."""
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in procs)))


def rss_bytes(procs: Iterable[psutil.Process]) -> int:
    """Resident memory of ``procs``, summed."""
    return sum(int(p.memory_info().rss) for p in procs)


def open_fds(procs: Iterable[psutil.Process]) -> int:
    """Open file descriptors of ``procs``, summed."""
    return sum(int(p.num_fds()) for p in procs)
