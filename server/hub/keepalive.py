"""Keepalive pings for every connection of an event loop from one timer, not one task each.

websockets runs its keepalive as a task per connection: a task, its coroutine frame and a
timer handle, about 1.4 KB for each idle connection (measured: 19,500 connections, see
``bench/RESULTS.md``), and a wake-up for every connection every interval. Here the
connections sit in a timing wheel: slot ``i`` holds the connections pinged at tick ``i``,
one timer walks the wheel, and a connection costs a set entry and a dict entry.

The behaviour is websockets' own: a ping every ``ping_interval`` seconds, and a connection
whose pong has not come ``ping_timeout`` seconds later is closed with 1011 "keepalive ping
timeout". Times are kept to one tick (at most a second; less for shorter intervals): a
first ping comes an interval after the handshake, a timeout fires between ``ping_timeout``
and ``ping_timeout`` plus a tick. Pings are written without waiting for the socket to drain,
so a slow reader cannot hold the sweep up (its unsent bytes are the outbox's bound).

A connection leaves the wheel when its connection is lost (:meth:`Keepalive.remove`), so
nothing here keeps a closed connection alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import struct
from typing import TYPE_CHECKING

from websockets.frames import CloseCode
from websockets.protocol import State

if TYPE_CHECKING:
    from websockets.asyncio.connection import Connection

MAX_TICK_S = 1.0
"""The wheel's resolution: pings and timeouts are kept to within this (or a quarter of a
shorter interval or timeout)."""

TIMEOUT_REASON = "keepalive ping timeout"

PING_CHUNK = 64
"""Connections pinged per event-loop callback. A tick's slot holds 1/20 of the connections
(950 at 19,000): pinged in one go they held the loop (an estimated ~20 ms), and a
revocation that arrived meanwhile waited for them (bench/connections.py, 95,000 on 5
workers: 3 of 40 revokes over 50 ms). Between chunks the loop runs whatever else is
ready."""


class Keepalive:
    """Pings the connections of one event loop that share one interval and timeout."""

    __slots__ = (
        "_awaiting",
        "_expiring",
        "_handle",
        "_slot",
        "_sweep",
        "_tick",
        "_wheel",
        "interval",
        "loop",
        "tick_s",
        "timeout",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float | None
    ) -> None:
        if interval <= 0:
            raise ValueError("the keepalive interval must be positive")
        if timeout is not None and timeout <= 0:
            raise ValueError("the keepalive timeout must be positive (or None: no timeout)")
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        self.tick_s = min(MAX_TICK_S, interval / 4, (timeout or math.inf) / 4)
        slots = max(1, round(interval / self.tick_s))
        self._wheel: list[set[Connection]] = [set() for _ in range(slots)]
        self._slot: dict[Connection, int] = {}
        # Pong deadlines: a wheel one longer than the timeout in ticks, so that the slot
        # checked at a tick is never the one that tick's pings are put in.
        span = 0 if timeout is None else math.ceil(timeout / self.tick_s) + 1
        self._expiring: list[set[Connection]] = [set() for _ in range(span)]
        self._awaiting: dict[Connection, int] = {}
        self._tick = 0
        self._handle: asyncio.TimerHandle | None = None
        self._sweep: asyncio.Handle | None = None  # the rest of a tick's pings

    def __len__(self) -> int:
        return len(self._slot)

    def add(self, conn: Connection) -> None:
        """Ping ``conn`` from an interval from now on (it has just opened)."""
        if conn in self._slot:
            return
        # The slot just walked comes round again last: a full interval from now.
        slot = (self._tick - 1) % len(self._wheel)
        self._wheel[slot].add(conn)
        self._slot[conn] = slot
        if self._handle is None:
            self._handle = self.loop.call_later(self.tick_s, self._step)

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` (its connection was lost)."""
        slot = self._slot.pop(conn, None)
        if slot is not None:
            self._wheel[slot].discard(conn)
        self._answered(conn)

    def _answered(self, conn: Connection) -> None:
        deadline = self._awaiting.pop(conn, None)
        if deadline is not None:
            self._expiring[deadline].discard(conn)

    def _step(self) -> None:
        tick = self._tick
        self._tick = tick + 1
        if self._expiring:
            due = self._expiring[tick % len(self._expiring)]
            if due:
                late = list(due)
                due.clear()
                for conn in late:
                    self.remove(conn)  # it is closing: never pinged again
                    self._time_out(conn)
        if self._slot:
            self._handle = self.loop.call_later(self.tick_s, self._step)
        else:
            self._handle = None  # re-armed by the next add
        self._ping_from(list(self._wheel[tick % len(self._wheel)]), 0, tick)

    def _ping_from(self, conns: list[Connection], start: int, tick: int) -> None:
        """Ping ``conns[start:]``, :data:`PING_CHUNK` per callback."""
        end = start + PING_CHUNK
        for conn in conns[start:end]:
            if conn not in self._awaiting and conn in self._slot:  # not doubled; not gone
                self._ping(conn, tick)
        self._sweep = (
            self.loop.call_soon(self._ping_from, conns, end, tick) if end < len(conns) else None
        )

    def _ping(self, conn: Connection, tick: int) -> None:
        """What ``await conn.ping()`` does, without waiting for the socket to drain."""
        if conn.protocol.state is not State.OPEN:
            return  # closing: connection_lost removes it
        data = struct.pack("!I", random.getrandbits(32))
        while data in conn.pending_pings:
            data = struct.pack("!I", random.getrandbits(32))
        pong = self.loop.create_future()
        conn.pending_pings[data] = (pong, self.loop.time())
        conn.protocol.send_ping(data)
        try:
            conn.send_data()
        except Exception:  # the transport failed; connection_lost follows
            return
        if self._expiring:
            deadline = (tick + len(self._expiring) - 1) % len(self._expiring)
            self._expiring[deadline].add(conn)
            self._awaiting[conn] = deadline
            pong.add_done_callback(lambda done: self._settled(conn, done))
        else:
            pong.add_done_callback(_consume)

    def _settled(self, conn: Connection, pong: asyncio.Future[float]) -> None:
        self._answered(conn)
        _consume(pong)

    def _time_out(self, conn: Connection) -> None:
        if conn.protocol.state is not State.OPEN:
            return
        # As websockets' keepalive: fail the connection with 1011, and close the transport
        # if the close frame has not been answered within the close timeout.
        conn.protocol.fail(CloseCode.INTERNAL_ERROR, TIMEOUT_REASON)
        with contextlib.suppress(Exception):
            conn.send_data()
        close_timeout = conn.close_timeout if conn.close_timeout is not None else 10.0
        self.loop.call_later(close_timeout, _abort_unless_closed, conn)

    def close(self) -> None:
        """Stop the timer (the loop is ending)."""
        for handle in (self._handle, self._sweep):
            if handle is not None:
                handle.cancel()
        self._handle = self._sweep = None


def _consume(pong: asyncio.Future[float]) -> None:
    # A pong future that fails when the connection is lost is never awaited: read it so
    # asyncio does not log "exception was never retrieved".
    if not pong.cancelled():
        pong.exception()


def _abort_unless_closed(conn: Connection) -> None:
    if conn.protocol.state is not State.CLOSED:
        conn.transport.abort()


_current: dict[tuple[float, float | None], Keepalive] = {}
_current_loop: asyncio.AbstractEventLoop | None = None


def keepalive_for(interval: float, timeout: float | None) -> Keepalive:
    """The running loop's :class:`Keepalive` for this interval and timeout (one loop at a
    time runs the hub; tests make several, one after another)."""
    global _current_loop
    loop = asyncio.get_running_loop()
    if _current_loop is not loop:
        for old in _current.values():
            old.close()
        _current.clear()
        _current_loop = loop
    keepalive = _current.get((interval, timeout))
    if keepalive is None:
        keepalive = _current[(interval, timeout)] = Keepalive(loop, interval, timeout)
    return keepalive
