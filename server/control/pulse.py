"""One look at ``control.db``'s ``data_version`` for the whole hub process, every 50 ms.

Three parts of a hub wait for other processes' commits to ``control.db``: the revocation
watcher (``hypertab key revoke`` from the CLI), the webhook dispatcher (``webhook add``)
and the alert dispatcher (an alert raised by another process). Each polled on a timer of
its own, 20 times a second, and the webhook and alert loops made a task per round
(``asyncio.wait_for``): about 4 ms of CPU a second each, most of an idle hub's 13 ms/s
(bench/RESULTS.md). :class:`ControlPulse` reads ``data_version`` once an interval for all
of them (one timer, no task) and sets each subscriber's :class:`Wakeup` only when it moved;
their own waits are then for their own deadlines (a retry that falls due), with a
once-a-second look as a safety net.

``PRAGMA data_version`` changes exactly when a connection other than the one asking
committed (:mod:`server.delivery.dbwatch`). A read that fails (a busy file) counts as a
change: the subscribers look for themselves, as each did before.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from server.delivery.dbwatch import CommitWatch

log = logging.getLogger(__name__)

INTERVAL_S = 0.05
"""How often ``data_version`` is read: a CLI revocation reaches the hub within this."""
RECHECK_S = 1.0
"""A subscriber's longest sleep with nothing due: a look for itself, should a wake-up it
needed have been missed (it never lost one in the tests; this bounds what one would cost)."""


def sleep_for(due: float | None, now: float) -> float:
    """How long a subscriber may sleep at ``now``: until ``due`` (its next retry, on the
    clock ``now`` is read from), and never past :data:`RECHECK_S`."""
    return RECHECK_S if due is None else min(RECHECK_S, due - now)


class Wakeup:
    """An :class:`asyncio.Event` for one waiter whose :meth:`wait` also ends at a timeout,
    without the task per wait that ``asyncio.wait_for(event.wait(), timeout)`` makes."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        self._set = False

    async def wait(self, within: float | None) -> None:
        """Until :meth:`set` (at once if it is set) or ``within`` seconds pass (``None``: no
        limit)."""
        if self._set:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = None if within is None else loop.call_later(max(0.0, within), _end, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _end(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ControlPulse:
    """Reads ``path``'s ``data_version`` every ``interval`` seconds once :meth:`start`\\ ed;
    sets every subscribed :class:`Wakeup` when another connection committed."""

    def __init__(self, path: Path, interval: float = INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        self._subscribers: list[Wakeup] = []
        self._watch: CommitWatch | None = None
        self._timer: asyncio.TimerHandle | None = None

    def subscribe(self, wakeup: Wakeup) -> None:
        """Set ``wakeup`` at every change from now on."""
        self._subscribers.append(wakeup)

    def start(self) -> None:
        """Open the read connection (control.db exists) and start the timer."""
        if self._watch is not None:
            return
        self._watch = CommitWatch(self.path)
        self._watch.changed()  # the first answer is always "changed": take it now
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        # Re-armed first: whatever happens below, the next look still comes.
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
        assert self._watch is not None
        try:
            moved = self._watch.changed()
        except sqlite3.Error as exc:
            log.debug("control.db data_version unreadable (%s)", type(exc).__name__)
            moved = True
        if moved:
            for wakeup in self._subscribers:
                wakeup.set()

    def close(self) -> None:
        """Stop the timer and close the connection (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
