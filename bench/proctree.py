"""A server's processes and what they spend, summed: one process, or a supervisor with its
workers (``serve --workers N``) and whatever else counts as the server (its redis-server).

Shared by bench/connections.py, bench/fanout.py and bench/handshake.py, so that "the
server's CPU" and "the server's RSS" mean the same in every figure they print.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil  # type: ignore[import-untyped]


def tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and every process under it (just ``root`` once it has gone)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [root]


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs``, summed, to the nanosecond where Linux says.

    ``cpu_times()`` counts in clock ticks (10 ms): a bench phase of a quarter of a second
    would then be read to +-4 %, more than the differences the benches are there to show.
    The scheduler's own per-thread runtime (``/proc/<pid>/task/<tid>/schedstat``) is
    exact. It covers the threads alive when read, and the servers measured keep theirs
    (the event loop, aiosqlite's connection threads, the executor's) for their whole run;
    where it cannot be read, the tick counts are used.
    """
    return sum(_process_cpu(p) for p in procs)


def _process_cpu(proc: psutil.Process) -> float:
    try:
        total = 0
        for task in os.scandir(f"/proc/{proc.pid}/task"):
            with open(f"{task.path}/schedstat") as stats:
                total += int(stats.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        times = proc.cpu_times()
        return float(times.user + times.system)


def rss_bytes(procs: Iterable[psutil.Process]) -> int:
    """Resident memory of ``procs``, summed."""
    return sum(int(p.memory_info().rss) for p in procs)


def open_fds(procs: Iterable[psutil.Process]) -> int:
    """Open file descriptors of ``procs``, summed."""
    return sum(int(p.num_fds()) for p in procs)
