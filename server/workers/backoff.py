"""How long the supervisor waits before starting a worker again (pure: ``now`` passed in).

A worker that keeps dying at once (a bad setting, a full disk) must not be restarted in a
tight loop: every quick death doubles the wait, from :data:`FIRST_DELAY` up to
:data:`MAX_DELAY`. A worker that ran for :data:`STABLE_AFTER` seconds before it died starts
the count again: a crash now and then is restarted after the first delay.
"""

from __future__ import annotations

FIRST_DELAY = 0.5
"""Seconds before the first restart (a worker killed once is back within a second)."""
MAX_DELAY = 30.0
"""The longest wait between restarts of a worker that keeps dying."""
STABLE_AFTER = 30.0
"""A worker that lived this long before dying was healthy: its delay starts over."""


class RestartBackoff:
    """The restart delays of one worker slot."""

    def __init__(
        self,
        first: float = FIRST_DELAY,
        maximum: float = MAX_DELAY,
        stable_after: float = STABLE_AFTER,
    ) -> None:
        self.first = first
        self.maximum = maximum
        self.stable_after = stable_after
        self.quick_deaths = 0
        """Deaths in a row of workers that lived less than :attr:`stable_after`."""

    def delay(self, started: float, died: float) -> float:
        """The wait before restarting a worker that started at ``started`` and died at
        ``died`` (monotonic seconds)."""
        if died - started >= self.stable_after:
            self.quick_deaths = 0
        wait = min(self.maximum, self.first * 2.0**self.quick_deaths)
        self.quick_deaths += 1
        return wait
