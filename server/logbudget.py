"""How many log lines a peer can cause: a budget per kind of record, at every level.

How it works
------------
Anything a client can trigger once per frame (a ping at DEBUG, a failing request at ERROR)
could otherwise be turned into a log line per frame: formatting, redacting and writing a
line costs far more than receiving a frame, and a blocked stderr stalls the event loop.

- :class:`LogRateLimit` (on the log handler, ``server.logs.configure_logging``): at most
  50 records a second per kind (logger and message template); the rest are dropped and
  counted, and the next record of that kind carries ``suppressed``.
- :class:`FrameLogGate` (each connection's logger): websockets logs every frame at DEBUG; the
  gate charges those records to :data:`FRAME_LOG_BUDGET` *before* a ``LogRecord`` is made
  and rewrites them to direction, opcode and size, never the payload.
- :func:`records_dropped`: the total, exported as ``hypertab_log_records_dropped_total``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

_dropped_total = 0


def records_dropped() -> int:
    """Log records dropped so far by every :class:`LogRateLimit` in this process (only
    grows, even when a limit is replaced: it is a Prometheus counter)."""
    return _dropped_total


class LogRateLimit(logging.Filter):
    """Bounds how many records of one kind are emitted per second, at every level.

    A kind is a logger plus its message template (``record.msg`` before formatting), so a
    peer that can make the server log something per frame (a ping flood at DEBUG, a failing
    request at ERROR) gets at most ``per_second`` such lines a second, not one per frame:
    formatting, redacting and writing a line costs far more than receiving a frame, and a
    blocked stderr would stall the event loop. Dropped records are counted; the next record
    of that kind that passes carries ``suppressed`` (how many were dropped before it).
    State is bounded: at most ``max_kinds`` kinds are tracked (then the table restarts).
    """

    def __init__(
        self,
        per_second: int = 50,
        *,
        max_kinds: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.per_second = per_second
        self.max_kinds = max_kinds
        self.clock = clock
        self.dropped = 0
        """Records dropped so far (all kinds)."""
        self._kinds: dict[tuple[str, object], list[float]] = {}  # [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record unless its kind is over budget in the current second."""
        msg = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        suppressed = self.admit((record.name, msg))
        if suppressed is None:
            return False
        if suppressed:
            record.suppressed = suppressed
        return True

    def admit(self, key: tuple[str, object]) -> int | None:
        """Charge one record of kind ``key``: None if it is over budget (dropped), else how
        many of that kind were dropped since the last one admitted."""
        now = self.clock()
        state = self._kinds.get(key)
        if state is None:
            if len(self._kinds) >= self.max_kinds:
                self._kinds.clear()
            state = self._kinds[key] = [now, 0.0, 0.0]
        elif now - state[0] >= 1.0:
            state[0], state[1] = now, 0.0
        if state[1] >= self.per_second:
            global _dropped_total
            state[2] += 1
            self.dropped += 1
            _dropped_total += 1
            return None
        state[1] += 1
        dropped = int(state[2])
        state[2] = 0.0
        return dropped


class FrameLogFilter(logging.Filter):
    """Rewrites websockets' per-frame debug records to the frame's kind and size only.

    websockets logs every frame at DEBUG as ``< TEXT '{"type": ...' [22 bytes]`` (the start
    of the payload: a message body) or a hex dump for binary frames. The rewritten record
    says ``< frame TEXT [22 bytes]``: direction, opcode and length, never the payload.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a frame record in place; never drops a record."""
        args = record.args
        if (
            record.msg in ("< %s", "> %s")
            and isinstance(args, tuple)
            and len(args) == 1
            and hasattr(args[0], "opcode")
            and hasattr(args[0], "data")
        ):
            frame = args[0]
            record.msg = f"{record.msg[0]} frame %s [%d bytes]"
            record.args = (getattr(frame.opcode, "name", "?"), len(frame.data))
        return True


FRAME_LOG_BUDGET = LogRateLimit()
"""The process-wide budget of per-frame debug records (50 a second per direction)."""

_FRAME_TEMPLATES = frozenset({"< %s", "> %s"})
_CONNECTION_CHATTER = frozenset({"connection open", "connection closed"})
"""= ``ConnectionChatterFilter.CHATTER`` (not imported: this module stays below auth)."""


class FrameLogGate(logging.LoggerAdapter):  # type: ignore[type-arg]
    """One connection's logger, charging per-frame debug records to :data:`FRAME_LOG_BUDGET`
    *before* a record is made: a dropped frame record costs a dict lookup, not a
    ``LogRecord``, filters and a caller lookup (about 30 us each, so a flood of pings would
    otherwise stall the event loop at DEBUG even with every record dropped)."""

    def __init__(self, inner: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        if isinstance(inner, logging.LoggerAdapter):
            super().__init__(inner.logger, inner.extra)
        else:
            super().__init__(inner, {})

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log at INFO, except websockets' per-connection ``connection open`` / ``connection
        closed`` lines while DEBUG is off: dropped here before a record is made, as
        :class:`~server.auth.handshake.ConnectionChatterFilter` would drop the record."""
        if msg in _CONNECTION_CHATTER and not self.logger.isEnabledFor(logging.DEBUG):
            return
        super().info(msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log at DEBUG; a frame record says only direction, opcode and size."""
        if msg in _FRAME_TEMPLATES and len(args) == 1 and self.logger.isEnabledFor(logging.DEBUG):
            suppressed = FRAME_LOG_BUDGET.admit((self.logger.name, msg))
            if suppressed is None:
                return
            frame: Any = args[0]
            extra: dict[str, object] = dict(self.extra or {})
            if suppressed:
                extra["suppressed"] = suppressed
            opcode = getattr(getattr(frame, "opcode", None), "name", "?")
            size = len(getattr(frame, "data", b""))
            self.logger.debug(f"{str(msg)[0]} frame %s [%d bytes]", opcode, size, extra=extra)
            return
        super().debug(msg, *args, **kwargs)


def bound_frame_logging(logger: logging.Logger) -> logging.Logger:
    """Install :class:`FrameLogFilter` on the WebSocket server's logger (frame records that
    did not come through a :class:`FrameLogGate` lose their payload too). Connections wrap
    the logger in a gate, which bounds frame records before they are even made; every other
    record is bounded by the handler's :class:`LogRateLimit`."""
    if not any(isinstance(f, FrameLogFilter) for f in logger.filters):
        logger.addFilter(FrameLogFilter())
    return logger
