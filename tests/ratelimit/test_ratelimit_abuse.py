"""The abuse tracker and the denial aggregator, by plain calls."""

from __future__ import annotations

from protocol.errors import CloseCode
from server.ratelimit import CLOSE_CODE, AbuseTracker, DenialAggregator


def test_sustained_denials_close_the_socket() -> None:
    tracker = AbuseTracker(max_denials=5, within_s=10.0)
    assert CLOSE_CODE is CloseCode.RATE_ABUSE and int(CLOSE_CODE) == 4029
    assert [tracker.record_denial(float(t)) for t in range(5)] == [False] * 4 + [True]


def test_occasional_denials_do_not() -> None:
    tracker = AbuseTracker(max_denials=5, within_s=10.0)
    # One denial every 3 s (a client honouring retry_after): never 5 within 10 s.
    assert not any(tracker.record_denial(t * 3.0) for t in range(100))
    tracker.reset()
    assert not tracker.record_denial(1000.0)


def test_aggregator_emits_one_summary_per_actor_per_window() -> None:
    agg = DenialAggregator(window_s=60.0)
    for i in range(1000):
        agg.record("t1", "alice", 10.0 + i / 100, cost=3)
    agg.record("t1", "bob", 30.0)
    assert agg.drain(69.9) == []
    [alice] = agg.drain(70.0)
    assert (alice.actor, alice.count, alice.units) == ("alice", 1000, 3000)
    assert (alice.window_start, alice.window_end) == (10.0, 70.0)
    assert alice.details()["count"] == 1000
    [bob] = agg.drain(90.0)
    assert bob.actor == "bob" and bob.count == 1
    assert agg.drain(1000.0) == [] and len(agg) == 0


def test_aggregator_rolls_windows_and_drains_all() -> None:
    agg = DenialAggregator(window_s=10.0)
    agg.record("t1", "alice", 0.0)
    agg.record("t1", "alice", 15.0)  # closes the first window, opens a second
    agg.record("t2", "alice", 16.0)  # another tenant is another actor
    summaries = agg.drain_all()
    assert [(s.tenant, s.window_start, s.count) for s in summaries] == [
        ("t1", 0.0, 1),
        ("t1", 15.0, 1),
        ("t2", 16.0, 1),
    ]


def test_aggregator_memory_is_bounded() -> None:
    agg = DenialAggregator(window_s=60.0, max_open=10)
    for i in range(100):
        agg.record("t1", f"actor{i}", float(i) / 100)
        assert len(agg) <= 10
    out = agg.drain(1.0)
    assert len(out) == 90 and sum(s.count for s in out) == 90
