"""The pure sliding-window log, by plain function calls: no event loop, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.ratelimit.window import (
    Charge,
    Decision,
    RateLimitError,
    SlidingLog,
    acquire_logs,
    combine,
)

W = 60_000  # one minute, in ms


def test_admits_exactly_limit_then_denies() -> None:
    log = SlidingLog()
    for i in range(100):
        d = log.check(i, 1, 100, W)
        assert d.allowed and d.remaining == 99 - i
        log.commit(i, 1)
    d = log.check(100, 1, 100, W)
    assert not d.allowed
    assert d.retry_after_ms == W - 100  # the entry at t=0 leaves at t=W


def test_burst_straddling_a_window_boundary_is_still_limited() -> None:
    # 100 at the very end of one minute and 100 just after it: a fixed window would let
    # 200 through in 2 ms; the sliding window lets the second burst wait a full minute.
    log = SlidingLog()
    for _ in range(100):
        assert log.check(W - 1, 1, 100, W).allowed
        log.commit(W - 1, 1)
    assert not log.check(W + 1, 1, 100, W).allowed
    assert not log.check(2 * W - 2, 1, 100, W).allowed
    assert log.check(2 * W - 1, 100, 100, W).allowed


def test_cost_is_counted_and_batches_cannot_bypass() -> None:
    log = SlidingLog()
    assert log.check(0, 60, 100, W).allowed
    log.commit(0, 60)
    d = log.check(1, 41, 100, W)
    assert not d.allowed and d.remaining == 40
    assert log.check(1, 40, 100, W).allowed


def test_denied_request_consumes_nothing() -> None:
    log = SlidingLog()
    log.commit(0, 90)
    for t in range(1, 50):
        assert not log.check(t, 20, 100, W).allowed
    assert log.used() == 90
    assert log.check(50, 10, 100, W).allowed


def test_retry_after_is_exact() -> None:
    log = SlidingLog()
    for t, cost in [(0, 30), (1000, 30), (2000, 40)]:
        log.commit(t, cost)
    d = log.check(3000, 50, 100, W)  # needs the first two entries gone
    assert not d.allowed
    assert d.retry_after_ms == 1000 + W - 3000
    assert not log.check(3000 + d.retry_after_ms - 1, 50, 100, W).allowed
    assert log.check(3000 + d.retry_after_ms, 50, 100, W).allowed


def test_oversize_cost_is_flagged() -> None:
    d = SlidingLog().check(0, 101, 100, W)
    assert not d.allowed and d.oversize and d.retry_after_ms == W


def test_clock_going_back_never_loosens_the_limit() -> None:
    log = SlidingLog()
    log.commit(10_000, 100)
    d = log.check(5_000, 1, 100, W)  # a skewed host, five seconds behind
    assert not d.allowed
    assert d.retry_after_ms == 10_000 + W - 5_000


def test_compaction_keeps_counts() -> None:
    log = SlidingLog()
    for t in range(2000):
        assert log.check(t * 100, 1, 1000, 10_000).allowed
        log.commit(t * 100, 1)
    assert log.used() == 100 and len(log) == 100


def test_same_millisecond_admissions_merge() -> None:
    log = SlidingLog()
    for _ in range(10):
        log.commit(5, 3)
    assert len(log) == 1 and log.used() == 30


def test_all_or_nothing_across_charges() -> None:
    principal, burst = SlidingLog(), SlidingLog()
    pairs = [(principal, Charge("p", 5, 100, 60)), (burst, Charge("c", 1, 2, 1))]
    assert acquire_logs(pairs, 0.0).allowed
    assert acquire_logs(pairs, 0.001).allowed
    d = acquire_logs(pairs, 0.002)
    assert not d.allowed and d.denied_key == "c" and d.retry_after_ms == 998
    assert principal.used() == 10  # the denied request took nothing from the other limit


def test_combine_prefers_oversize_then_longest_wait() -> None:
    a = Decision(False, 10, 0, 500)
    b = Decision(False, 10, 0, 900)
    assert combine([("a", a), ("b", b)]).denied_key == "b"
    c = Decision(False, 10, 10, 60_000, oversize=True)
    assert combine([("a", a), ("c", c)]).oversize


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": "", "cost": 1, "limit": 1, "window_s": 1.0},
        {"key": "k", "cost": 0, "limit": 1, "window_s": 1.0},
        {"key": "k", "cost": 1, "limit": 0, "window_s": 1.0},
        {"key": "k", "cost": 1, "limit": 1, "window_s": 0.0001},
    ],
)
def test_charge_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(RateLimitError):
        Charge(**kwargs)  # type: ignore[arg-type]


class Reference:
    """Brute force: keep every admission, sum the window on each check."""

    def __init__(self) -> None:
        self.admitted: list[tuple[int, int]] = []

    def used(self, now: int, window: int) -> int:
        return sum(c for t, c in self.admitted if t > now - window)

    def fits(self, now: int, cost: int, limit: int, window: int) -> bool:
        return self.used(now, window) + cost <= limit


requests = st.lists(st.tuples(st.integers(0, 3_000), st.integers(1, 12)), min_size=1, max_size=200)


@settings(max_examples=300, deadline=None)
@given(requests, st.integers(1, 40), st.integers(1, 5_000))
def test_matches_brute_force_exactly(steps: list[tuple[int, int]], limit: int, window: int) -> None:
    log, ref = SlidingLog(), Reference()
    now = 0
    for gap, cost in steps:
        now += gap
        d = log.check(now, cost, limit, window)
        assert d.allowed == ref.fits(now, cost, limit, window)
        if d.allowed:
            log.commit(now, cost)
            ref.admitted.append((now, cost))
        elif not d.oversize:
            # The promised wait is exact: one ms less still fails, the wait itself fits.
            later = now + d.retry_after_ms
            assert not ref.fits(later - 1, cost, limit, window)
            assert ref.fits(later, cost, limit, window)
        assert ref.used(now, window) <= limit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5_000), min_size=1, max_size=150), st.integers(1, 30))
def test_honest_traffic_is_never_denied(gaps: list[int], limit: int) -> None:
    # Honest: every window of W ms holds at most `limit` requests (brute-force filtered).
    window = 10_000
    times: list[int] = []
    now = 0
    for gap in gaps:
        now += gap
        if sum(1 for t in times if t > now - window) < limit:
            times.append(now)
    log = SlidingLog()
    for t in times:
        assert log.check(t, 1, limit, window).allowed
        log.commit(t, 1)
