"""Closing a connection when its credential expires, and moving that moment on re-auth.

A connection opened with a credential that has an expiry (a JWT's ``exp``, an API key's
``expires_at``) is closed with ``AUTH_EXPIRED`` (4001) when it passes, plus ``grace`` (the
JWT leeway, so the connection lives exactly as long as the handshake would still accept
the token). In-band re-authentication (``auth``) re-arms the timer with the new expiry.

:func:`close_delay` is the pure arithmetic; :class:`ExpiryTimer` is the event-loop shell.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from protocol.errors import CloseCode


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


class ExpiryTimer:
    """One connection's expiry: ``close(code, reason)`` is called when it is due."""

    def __init__(self, close: Callable[[int, str], None]) -> None:
        self._close = close
        self._handle: asyncio.TimerHandle | None = None
        self.expires_at: float | None = None

    def arm(self, expires_at: float | None, *, now: float, grace: float = 0.0) -> None:
        """(Re)schedule the close for ``expires_at`` + ``grace``; ``None`` disarms it."""
        self.cancel()
        self.expires_at = expires_at
        delay = close_delay(expires_at, now=now, grace=grace)
        if delay is not None:
            self._handle = asyncio.get_running_loop().call_later(
                delay, self._close, CloseCode.AUTH_EXPIRED, "credential expired"
            )

    def cancel(self) -> None:
        """Stop the timer (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
