"""In-process rate limiter: the embedded default for a single hub process.

State is bounded two ways, so keys made up by unauthenticated or hostile clients cannot grow
memory without limit: a key whose every entry has left its window is dropped (checked a few
keys at a time on each acquire, oldest-used first), and beyond ``max_keys`` the least recently
used key is evicted. Evicting a live key forgets its usage, which is permissive for that key;
size ``max_keys`` above the number of principals and connections active within a minute.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from server.ratelimit.window import (
    Charge,
    Decision,
    RateLimitError,
    SlidingLog,
    check_unique,
    combine,
    to_ms,
)


class _Slot:
    __slots__ = ("expires_ms", "log")

    def __init__(self) -> None:
        self.log = SlidingLog()
        self.expires_ms = 0  # when every entry will have left its window


class MemoryRateLimiter:
    """A :class:`~server.ratelimit.backend.RateLimiter` holding its logs in this process."""

    # Expired keys are swept a few at a time so one acquire never pays for a large sweep.
    _SWEEP_PER_CALL = 4

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 16:
            raise RateLimitError(f"max_keys must be >= 16, got {max_keys}")
        self.max_keys = max_keys
        self._slots: OrderedDict[str, _Slot] = OrderedDict()

    def __len__(self) -> int:
        """Number of keys currently tracked."""
        return len(self._slots)

    async def acquire(self, charges: Sequence[Charge], now: float) -> Decision:
        """Charge all of ``charges`` at ``now`` or none (see ``RateLimiter.acquire``)."""
        return self.acquire_sync(charges, now)

    def acquire_sync(self, charges: Sequence[Charge], now: float) -> Decision:
        """The same as :meth:`acquire`, without the coroutine (this backend never waits)."""
        check_unique(charges)
        if len(charges) > self.max_keys:
            raise RateLimitError("more charges in one acquire than max_keys")
        now_ms = to_ms(now)
        self._sweep(now_ms)
        slots = [self._slot(charge.key) for charge in charges]
        # The same all-or-nothing rule as ``acquire_logs``, inlined: this runs once per
        # hub message, and the common case (every charge fits) needs no combining.
        checked = [
            s.log.check(now_ms, c.cost, c.limit, c.window_ms)
            for s, c in zip(slots, charges, strict=True)
        ]
        if all(d.allowed for d in checked):
            tightest = checked[0]
            for slot, charge, d in zip(slots, charges, checked, strict=True):
                slot.log.commit(now_ms, charge.cost)
                if d.remaining < tightest.remaining:
                    tightest = d
                newest = slot.log.newest_ms
                if newest is not None and newest + charge.window_ms > slot.expires_ms:
                    slot.expires_ms = newest + charge.window_ms
            decision = tightest
        else:
            decision = combine([(c.key, d) for c, d in zip(charges, checked, strict=True)])
            for slot, charge in zip(slots, charges, strict=True):
                newest = slot.log.newest_ms
                if newest is not None and newest + charge.window_ms > slot.expires_ms:
                    slot.expires_ms = newest + charge.window_ms
        while len(self._slots) > self.max_keys:
            self._slots.popitem(last=False)
        return decision

    async def close(self) -> None:
        """Forget every key. Idempotent."""
        self._slots.clear()

    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        else:
            self._slots.move_to_end(key)
        return slot

    def _sweep(self, now_ms: int) -> None:
        for _ in range(self._SWEEP_PER_CALL):
            if not self._slots:
                return
            key, slot = next(iter(self._slots.items()))
            if slot.expires_ms > now_ms:
                return
            del self._slots[key]
