"""Closing a connection when its credential expires, and moving that moment on re-auth.

A connection opened with a credential that has an expiry (a JWT's ``exp``, an API key's
``expires_at``) is closed with ``AUTH_EXPIRED`` (4001) when it passes, plus ``grace`` (the
JWT leeway, so the connection lives exactly as long as the handshake would still accept
the token). In-band re-authentication (``auth``) re-arms the timer with the new expiry.

:func:`close_delay` is the pure arithmetic; :class:`ExpiryTimer` is one connection's
expiry, and :class:`ExpiryQueue` runs all of a hub's on one event-loop timer.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

from protocol.errors import CloseCode

log = logging.getLogger(__name__)


def close_delay(expires_at: float | None, *, now: float, grace: float) -> float | None:
    """Seconds from ``now`` until a connection expiring at ``expires_at`` must close.

    ``None`` when it never expires; ``0.0`` when it is already due.
    """
    if expires_at is None:
        return None
    return max(0.0, expires_at + grace - now)


def is_expired(expires_at: float | None, *, now: float) -> bool:
    """Whether the credential itself has expired at ``now`` (grace not counted)."""
    return expires_at is not None and now >= expires_at


class ExpiryQueue:
    """Every expiry of one hub, on one event-loop timer: the earliest due.

    A timer handle per connection (uvloop: a libuv timer each, started and stopped) cost
    about 1 us per JWT handshake. Here an expiry is one heap entry; cancelling one clears
    its callback (so a closed session is not kept alive by the heap) and leaves the entry
    to be dropped when it comes due, or all at once when dead entries outnumber live ones.
    Callbacks run at their due time, to the loop timer's own resolution (1 ms).
    """

    RESOLUTION = 0.001
    """Entries due within this of the loop's clock run now (uvloop's timers are in ms)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Due]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._dead = 0

    def __len__(self) -> int:
        """Expiries still to run (cancelled ones not counted)."""
        return len(self._heap) - self._dead

    def schedule(self, close: Callable[[int, str], None], delay: float) -> _Due:
        """Call ``close(AUTH_EXPIRED, "credential expired")`` in ``delay`` seconds."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests make several): nothing carries over
            self._reset(loop)
        when = loop.time() + delay
        due = _Due(close)
        heapq.heappush(self._heap, (when, next(self._seq), due))
        if self._armed_for is None or when < self._armed_for:
            self._arm(when)
        return due

    def cancel(self, due: _Due) -> None:
        """Forget ``due`` (idempotent)."""
        if due.close is None:
            return
        due.close = None
        self._dead += 1
        if self._dead > 64 and self._dead * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].close is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._heap, self._loop, self._handle, self._armed_for, self._dead = [], loop, None, None, 0

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._run_due)

    def _run_due(self) -> None:
        self._handle = self._armed_for = None
        assert self._loop is not None
        now = self._loop.time() + self.RESOLUTION
        heap = self._heap
        while heap and heap[0][0] <= now:
            due = heapq.heappop(heap)[2]
            close = due.close
            if close is None:
                self._dead -= 1
                continue
            due.close = None
            try:
                close(CloseCode.AUTH_EXPIRED, "credential expired")
            except Exception:  # one failing close must not keep the others open
                log.exception("closing an expired connection failed")
        if heap:
            self._arm(heap[0][0])


class _Due:
    """One scheduled expiry: its callback until it runs or is cancelled."""

    __slots__ = ("close",)

    def __init__(self, close: Callable[[int, str], None]) -> None:
        self.close: Callable[[int, str], None] | None = close


class ExpiryTimer:
    """One connection's expiry: ``close(code, reason)`` is called when it is due."""

    __slots__ = ("_close", "_due", "_queue", "expires_at")

    def __init__(self, close: Callable[[int, str], None], queue: ExpiryQueue) -> None:
        self._close = close
        self._queue = queue
        self._due: _Due | None = None
        self.expires_at: float | None = None

    def arm(self, expires_at: float | None, *, now: float, grace: float = 0.0) -> None:
        """(Re)schedule the close for ``expires_at`` + ``grace``; ``None`` disarms it."""
        self.cancel()
        self.expires_at = expires_at
        delay = close_delay(expires_at, now=now, grace=grace)
        if delay is not None:
            self._due = self._queue.schedule(self._close, delay)

    def cancel(self) -> None:
        """Stop the timer (idempotent)."""
        if self._due is not None:
            self._queue.cancel(self._due)
            self._due = None
