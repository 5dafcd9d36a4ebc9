"""A burst of failed handshakes: ``threshold`` failures within ``window`` seconds for one
key (a peer address, or a tenant), alerted once per ``cooldown``. Pure: ``now`` is passed.

Keys are bounded (``max_keys``): under a flood from many addresses the oldest keys are
forgotten first, so memory stays flat; the per-address handshake throttle (429) already
caps what one address can try.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_THRESHOLD = "HYPERTAB_ALERT_AUTH_FAILURES"
ENV_WINDOW = "HYPERTAB_ALERT_AUTH_WINDOW"


@dataclass(slots=True)
class BurstDetector:
    """Counts failures per key in a sliding window."""

    threshold: int = 20
    window: float = 60.0
    cooldown: float = 600.0
    max_keys: int = 10_000
    _seen: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _alerted: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BurstDetector:
        """Thresholds from ``HYPERTAB_ALERT_AUTH_FAILURES`` / ``HYPERTAB_ALERT_AUTH_WINDOW``."""
        env = os.environ if environ is None else environ
        threshold = int(env.get(ENV_THRESHOLD) or 20)
        window = float(env.get(ENV_WINDOW) or 60.0)
        if threshold < 1 or window <= 0:
            raise ValueError(f"{ENV_THRESHOLD} and {ENV_WINDOW} must be positive")
        return cls(threshold=threshold, window=window)

    def record(self, key: str, now: float) -> int | None:
        """Count one failure; the count in the window when it makes a new burst, else None."""
        times = self._seen.get(key)
        if times is None:
            times = self._seen[key] = deque(maxlen=self.threshold)
            if len(self._seen) > self.max_keys:
                old, _ = self._seen.popitem(last=False)
                self._alerted.pop(old, None)
        else:
            self._seen.move_to_end(key)
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.threshold:
            return None
        last = self._alerted.get(key)
        if last is not None and now - last < self.cooldown:
            return None
        self._alerted[key] = now
        return len(times)
