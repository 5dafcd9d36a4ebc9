"""The SDK's pacer keeps a client inside the limits announced in ``welcome`` (pure)."""

from __future__ import annotations

from client_sdk.pacing import MARGIN_S, Pacer, plan_cost
from protocol.audit import ToolCall
from protocol.messages import Apply, Ping
from protocol.ops import InsertRows, NewRow


def test_burst_is_spaced_to_the_announced_rate() -> None:
    pacer = Pacer(ops_per_minute=0, burst_per_second=3)
    for _ in range(3):
        assert pacer.delay(0, 10.0) == 0
        pacer.record(0, 10.0)
    assert abs(pacer.delay(0, 10.2) - (0.8 + MARGIN_S)) < 1e-9
    assert pacer.delay(0, 11.0 + MARGIN_S) == 0


def test_ops_per_minute_counts_ops_not_messages() -> None:
    pacer = Pacer(ops_per_minute=10, burst_per_second=0)
    pacer.record(6, 0.0)
    pacer.record(4, 30.0)
    assert abs(pacer.delay(1, 31.0) - (29.0 + MARGIN_S)) < 1e-9  # the 6 ops at t=0 must leave
    assert abs(pacer.delay(7, 31.0) - (59.0 + MARGIN_S)) < 1e-9  # both entries must leave
    assert pacer.delay(11, 31.0) == 0  # can never fit: sent, the server says over_plan_limit


def test_zero_means_unlimited_and_costs_mirror_the_server() -> None:
    pacer = Pacer()
    for _ in range(1000):
        assert pacer.delay(5, 0.0) == 0
        pacer.record(5, 0.0)
    batch = Apply(id=1, table="t", client="c", op="o", ops=[InsertRows(rows=[NewRow()])] * 3)
    assert plan_cost(batch) == 3
    assert plan_cost(ToolCall(id=1, tool="x", args_digest="0" * 64)) == 1
    assert plan_cost(Ping(id=1)) == 0
