"""Bulk helpers split work into batches the hub can admit (pure)."""

from __future__ import annotations

from client_sdk.table import chunked_batches
from protocol.ops import Op, UpdateCells


def _updates(n: int, text: str = "x") -> list[Op]:
    return [UpdateCells(row=f"r{i}", values={"c": text}) for i in range(n)]


def test_batches_respect_the_wire_limit_a_rate_and_the_frame_size() -> None:
    assert [len(b) for b in chunked_batches(_updates(2500))] == [1000, 1000, 500]
    assert [len(b) for b in chunked_batches(_updates(250), max_ops=100)] == [100, 100, 50]
    big = chunked_batches(_updates(40, "y" * 60_000))  # ~2.4 MB of cells
    assert len(big) > 4 and sum(len(b) for b in big) == 40
    assert chunked_batches([]) == []
    assert [len(b) for b in chunked_batches(_updates(3), max_ops=0)] == [1, 1, 1]
