"""Writing frames to a connection without awaiting it, with a bound on what may queue.

The hub never awaits a subscriber: a frame is handed to the connection's transport at once
(as ``websockets.broadcast`` does), and a subscriber whose unsent bytes grow past the bound
is closed with ``SLOW_CONSUMER`` (4008) so that it cannot hold memory or slow anyone else.
It reconnects and resumes with ``since``.

The close frame can only leave after every byte already queued before it. A client that is
briefly behind reads on, sees 4008 and answers the close; one that stopped reading never
gets there, and a plain close would hold the buffer for websockets' close timeout (10 s) and
then end in 1006 anyway. So the transport is aborted :data:`SLOW_CONSUMER_GRACE_S` after the
close frame was queued, unless the close handshake finished first: the memory is freed in
about a second and the client sees the connection drop (1006, no close frame).

Large answers (snapshots, replays, query pages) are written with ``await conn.send``, which
waits for the socket to drain instead of queueing: their bound is time, not bytes. A frame
the socket has not taken within :data:`PACED_SEND_TIMEOUT_S` closes the connection the
same way.

Flushing: every connection written to during one event-loop turn is flushed by one shared
callback (:class:`_Flusher`), not one scheduled callback per connection, and one turn
later than the first write: the acks of a group commit are written by callbacks the commit
queues right after its ``changes`` frames, so a writer that is also a subscriber gets its
change and its ack in the same system call. What a connection holds leaves in one
``writelines`` (one ``writev``) rather than one ``write`` per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from websockets.protocol import State

from protocol.errors import CloseCode
from server.hub.connection import HubConnection
from server.hub.wire import framed

log = logging.getLogger(__name__)

SEND_BUFFER_LIMIT = 8 << 20
"""Unsent bytes a connection may hold before it is closed as a slow consumer (8 MiB)."""

SLOW_CONSUMER_GRACE_S = 1.0
"""Seconds a slow consumer's 4008 close frame may take to leave before the transport is
aborted (and the unsent bytes dropped)."""

PACED_SEND_TIMEOUT_S = 30.0
"""Longest wait for the socket to take one frame of a paced answer (snapshot, replay, query
page, audit chunk) before the connection is closed as a slow consumer: a client that asks
for large answers and stops reading must not hold its session (and what it queued) open."""


class Outbox:
    """The write side of one WebSocket connection.

    Frames are framed into the connection's protocol buffer at once (so their order is the
    order of ``write`` calls, shared with ``await conn.send``), but flushed to the socket
    once per event-loop turn: the acks and ``changes`` frames a connection gets from one
    group commit leave in one write, not one system call each.
    """

    __slots__ = ("_pending", "binary", "closing", "conn", "limit", "on_slow", "paced_timeout")

    def __init__(
        self,
        conn: HubConnection,
        *,
        binary: bool,
        limit: int = SEND_BUFFER_LIMIT,
        on_slow: Callable[[int], None] | None = None,
    ):
        self.conn = conn
        self.binary = binary
        self.limit = limit
        self.on_slow = on_slow
        """Called once, with the unsent byte count, when the connection is closed as slow."""
        self.paced_timeout = PACED_SEND_TIMEOUT_S
        """Longest wait for the socket to take one frame of a paced answer."""
        self.closing = False
        self._pending = False

    def write(self, frame: bytes) -> bool:
        """Queue ``frame`` (one encoded message) for sending; False if the connection is
        gone or closed."""
        return self.write_wire(frame, None)

    def write_wire(self, frame: bytes, wire: bytes | None) -> bool:
        """Like :meth:`write`, with ``wire`` = ``framed(frame, binary=self.binary)`` built
        once for every connection it goes to (:mod:`server.hub.wire`); None frames it here."""
        if self.closing:
            return False
        protocol = self.conn.protocol
        if protocol.state is not State.OPEN:
            return False
        if protocol.debug or protocol.extensions or protocol.expect_continuation_frame:
            if self.binary:
                protocol.send_binary(frame)
            else:
                protocol.send_text(frame)
        else:
            protocol.writes.append(wire if wire is not None else framed(frame, binary=self.binary))
        if not self._pending and not self.conn.greeting:  # else it leaves with the 101
            self._pending = True
            _flusher().add(self)
        return True

    def flush(self) -> None:
        """Hand what the connection holds to its transport (the shared flusher calls this
        once per turn), then close it as a slow consumer if too much is left unsent."""
        self._pending = False
        conn = self.conn
        try:
            conn.write_queued()
        except Exception:  # the transport failed; the reader side will see the close
            return
        unsent = conn.transport.get_write_buffer_size()
        if unsent > self.limit:
            self.slow_consumer(unsent)

    def slow_consumer(self, unsent: int) -> None:
        """Close as a slow consumer: report it (``on_slow``), queue 4008, and abort the
        transport :data:`SLOW_CONSUMER_GRACE_S` later unless the close finished."""
        if self.closing:
            return
        if self.on_slow is not None:
            self.on_slow(unsent)
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer: resume with since")
        asyncio.get_running_loop().call_later(SLOW_CONSUMER_GRACE_S, _abort, self.conn)

    def close(self, code: int, reason: str) -> None:
        """Close the connection in the background with ``code``."""
        if self.closing:
            return
        self.closing = True
        asyncio.get_running_loop().create_task(_close(self.conn, code, reason))


def _abort(conn: HubConnection) -> None:
    """Drop the connection and its unsent bytes unless its close handshake has finished."""
    if conn.protocol.state is not State.CLOSED:
        conn.transport.abort()


async def _close(conn: HubConnection, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await conn.close(code, reason)


class _Flusher:
    """Flushes the outboxes written to during one turn of one event loop, a turn later."""

    __slots__ = ("armed", "dirty", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[Outbox] = []
        self.armed = False

    def add(self, outbox: Outbox) -> None:
        self.dirty.append(outbox)
        if not self.armed:
            self.armed = True
            self.loop.call_soon(self._settle)

    def _settle(self) -> None:
        # Callbacks queued behind the first write (a commit's acks) run before the flush.
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        self.armed = False
        for outbox in dirty:
            try:
                outbox.flush()
            except Exception:  # a bug of ours: the other connections still get theirs
                log.exception("flushing a connection failed")


_current: _Flusher | None = None


def _flusher() -> _Flusher:
    """The running loop's flusher (one loop at a time runs the hub; tests make several)."""
    global _current
    loop = asyncio.get_running_loop()
    flusher = _current
    if flusher is None or flusher.loop is not loop:
        flusher = _current = _Flusher(loop)
    return flusher
