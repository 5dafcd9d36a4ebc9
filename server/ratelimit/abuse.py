"""Sustained rate-limit denials on one connection: when to stop answering and close it.

Pure: the caller passes ``now``. A client that honours ``retry_after_ms`` collects a denial
now and then; one that keeps sending while denied collects ``max_denials`` within
``within_s`` seconds, and the hub closes its socket with :data:`CLOSE_CODE` (4029, "reconnect
after a long backoff").
"""

from __future__ import annotations

from collections import deque

from protocol.errors import CloseCode
from server.ratelimit.window import RateLimitError

CLOSE_CODE = CloseCode.RATE_ABUSE
"""The close code for a connection the tracker flags."""


class AbuseTracker:
    """Counts one connection's recent denials; memory is ``max_denials`` timestamps."""

    __slots__ = ("_times", "max_denials", "within_s")

    def __init__(self, max_denials: int = 20, within_s: float = 10.0) -> None:
        if max_denials < 1 or within_s <= 0:
            raise RateLimitError("AbuseTracker needs max_denials >= 1 and within_s > 0")
        self.max_denials = max_denials
        self.within_s = within_s
        self._times: deque[float] = deque(maxlen=max_denials)

    def record_denial(self, now: float) -> bool:
        """Note a denial at ``now``; true when the connection should be closed for abuse."""
        self._times.append(now)
        return len(self._times) == self.max_denials and now - self._times[0] <= self.within_s

    def reset(self) -> None:
        """Forget past denials (for instance after the client re-authenticates)."""
        self._times.clear()
