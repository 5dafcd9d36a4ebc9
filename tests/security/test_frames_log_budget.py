"""The log rate limit: per kind of record, per second, with a count of what was dropped."""

from __future__ import annotations

import logging

from server.logbudget import LogRateLimit


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def record(msg: str, name: str = "server.test") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_each_kind_gets_its_own_budget_and_drops_are_reported() -> None:
    clock = Clock()
    limit = LogRateLimit(3, clock=clock)
    passed = [limit.filter(record("request failed")) for _ in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert limit.filter(record("another kind"))  # not charged to the first kind
    assert limit.filter(record("request failed", name="other.logger"))
    clock.t += 1.0
    first = record("request failed")
    assert limit.filter(first)
    assert getattr(first, "suppressed", None) == 7
    second = record("request failed")
    assert limit.filter(second) and not hasattr(second, "suppressed")
    assert limit.dropped == 7


def test_the_kind_table_is_bounded() -> None:
    limit = LogRateLimit(1, max_kinds=10, clock=Clock())
    for n in range(1000):
        assert limit.filter(record(f"message {n}"))
    assert len(limit._kinds) <= 10
