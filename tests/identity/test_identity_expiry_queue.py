"""ExpiryQueue: every connection's expiry on one loop timer (server/hub/expiry.py).

Real event loop, short real delays; what is checked is which closes run and in what
order, never how fast.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

from protocol.errors import CloseCode
from server.hub.expiry import ExpiryQueue, ExpiryTimer


class _Session:
    def __init__(self, name: str, closed: list[str]) -> None:
        self.name = name
        self.closed = closed

    def close_now(self, code: int, reason: str) -> None:
        assert code == CloseCode.AUTH_EXPIRED
        self.closed.append(self.name)


async def test_due_closes_run_in_order_and_cancelled_ones_never() -> None:
    queue = ExpiryQueue()
    closed: list[str] = []
    timers = {}
    for name, delay in (("late", 0.06), ("early", 0.02), ("cancelled", 0.03), ("mid", 0.04)):
        timer = timers[name] = ExpiryTimer(_Session(name, closed).close_now, queue)
        timer.arm(100.0 + delay, now=100.0)
    timers["cancelled"].cancel()
    timers["cancelled"].cancel()  # idempotent
    assert len(queue) == 3
    await asyncio.sleep(0.15)
    assert closed == ["early", "mid", "late"]
    assert len(queue) == 0


async def test_rearming_moves_the_close_and_none_disarms_it() -> None:
    queue = ExpiryQueue()
    closed: list[str] = []
    moved = ExpiryTimer(_Session("moved", closed).close_now, queue)
    moved.arm(100.05, now=100.0)
    moved.arm(100.01, now=100.0)  # re-auth with a token expiring sooner
    disarmed = ExpiryTimer(_Session("disarmed", closed).close_now, queue)
    disarmed.arm(100.02, now=100.0)
    disarmed.arm(None, now=100.0)  # re-auth with a credential without expiry
    await asyncio.sleep(0.03)
    assert closed == ["moved"]
    await asyncio.sleep(0.05)
    assert closed == ["moved"]  # the first arming of `moved` no longer runs


async def test_an_already_expired_credential_closes_on_the_next_turn() -> None:
    queue = ExpiryQueue()
    closed: list[str] = []
    ExpiryTimer(_Session("past", closed).close_now, queue).arm(90.0, now=100.0, grace=5.0)
    await asyncio.sleep(0.01)
    assert closed == ["past"]


async def test_a_cancelled_expiry_does_not_keep_its_session_alive() -> None:
    queue = ExpiryQueue()
    session = _Session("gone", [])
    alive = weakref.ref(session)
    timer = ExpiryTimer(session.close_now, queue)
    timer.arm(4000.0, now=100.0)  # an hour away: the entry stays in the heap
    timer.cancel()
    del session, timer
    gc.collect()
    assert alive() is None


async def test_many_cancelled_entries_are_dropped_and_the_rest_still_run() -> None:
    queue = ExpiryQueue()
    closed: list[str] = []
    timers = [ExpiryTimer(_Session(str(i), closed).close_now, queue) for i in range(300)]
    for i, timer in enumerate(timers):
        timer.arm(100.0 + (3600.0 if i % 10 else 0.02 + i / 10_000), now=100.0)
    for i, timer in enumerate(timers):
        if i % 10:
            timer.cancel()  # 270 of 300: the heap is rebuilt along the way
    assert len(queue) == 30
    assert len(queue._heap) < 300
    await asyncio.sleep(0.1)
    assert closed == [str(i) for i in range(0, 300, 10)]


async def test_a_failing_close_does_not_stop_the_others() -> None:
    queue = ExpiryQueue()
    closed: list[str] = []

    def broken(code: int, reason: str) -> None:
        raise RuntimeError("a bug of ours")

    ExpiryTimer(broken, queue).arm(100.01, now=100.0)
    ExpiryTimer(_Session("next", closed).close_now, queue).arm(100.01, now=100.0)
    await asyncio.sleep(0.05)
    assert closed == ["next"]
