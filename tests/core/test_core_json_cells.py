"""Checking json cells (pure: no event loop): cheap, bounded, and as strict as before.

Before: every element was walked in Python (about 1 µs each) before the size was known, so
one 1 MiB frame of json cells cost about a second of CPU; nothing bounded a batch.
"""

from __future__ import annotations

import datetime
import math
import random
from typing import Any

import msgspec
import pytest

from protocol.limits import MAX_JSON_BATCH_BYTES, MAX_JSON_CELL_BYTES, MAX_JSON_DEPTH
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, UpdateCells
from server.engine.batch import BatchError, plan_batch
from server.engine.catalog import TableState
from server.engine.cells import CellError, JsonBudget, json_text, to_stored


def nested(levels: int, inner: Any = None) -> Any:
    value: Any = [] if inner is None else inner
    for _ in range(levels - (inner is None)):
        value = [value]
    return value


def refusal(value: Any) -> str:
    with pytest.raises(CellError) as info:
        json_text(value)
    return str(info.value)


def test_plain_json_is_stored_as_compact_text() -> None:
    value = {"a": [1, 2.5, None, True, "x"], "b": {"c": 'é\n"\\'}, "d": -(2**53)}
    text = json_text(value)
    assert msgspec.json.decode(text) == value
    assert to_stored(ColumnType.JSON, 7) == "7"
    assert to_stored(ColumnType.JSON, "s") == '"s"'


@pytest.mark.parametrize(
    "value",
    [
        {1: "integer key"},
        {"a": {None: 1}},
        [math.nan],
        {"x": math.inf},
        [-math.inf],
        [b"bytes"],
        [datetime.datetime(2024, 1, 1)],
        [(1, 2)],
        [msgspec.msgpack.Ext(1, b"x")],
        {(1, 2): 3},
        [object()],
    ],
    ids=lambda v: type(v).__name__ + repr(v)[:20],
)
def test_what_is_not_plain_json_is_refused(value: Any) -> None:
    assert "json values must be" in refusal(value)


def test_integers_beyond_2_53_are_refused_wherever_they_are() -> None:
    assert json_text([2**53, -(2**53)]) == f"[{2**53},{-(2**53)}]"
    assert "2**53" in refusal({"a": [1, 2**53 + 1]})
    assert "2**53" in refusal([-(2**53) - 1])
    assert "2**53" in refusal([2**63])
    # Long digit runs that are not integers pass: in text, in a float's mantissa.
    assert json_text(["12345678901234567890", 0.12345678901234568, 1.2345678901234567e300])


def test_nesting_is_bounded_and_text_in_strings_does_not_hide_it() -> None:
    assert json_text(nested(MAX_JSON_DEPTH))
    assert json_text(nested(MAX_JSON_DEPTH, 1))
    assert "deeper" in refusal(nested(MAX_JSON_DEPTH + 1))
    assert "deeper" in refusal({"a": nested(MAX_JSON_DEPTH)})
    assert "deeper" in refusal(nested(800, math.nan))  # as deep as a frame may decode
    # Closing brackets inside strings before the deep part, opening ones after, escapes.
    trick = ["]]]]}}}}", nested(MAX_JSON_DEPTH), "[[[[{{{{", '\\"]]]\\']
    assert "deeper" in refusal(trick)
    assert json_text(["]]]]", nested(MAX_JSON_DEPTH - 1), '"[{\\'])


def test_an_oversize_cell_is_refused_by_its_size_before_it_is_checked() -> None:
    # NaN deep inside: the old walk found it first; now the size decides, before any walk.
    big = [0] * (MAX_JSON_CELL_BYTES // 2) + [math.nan]
    assert f"over {MAX_JSON_CELL_BYTES} bytes" in refusal(big)
    budget = JsonBudget(limit=100)
    with pytest.raises(CellError):
        json_text(big, budget)
    assert budget.left == 100  # an oversize cell is not even charged


def test_the_budget_is_charged_before_the_cell_is_checked() -> None:
    budget = JsonBudget(limit=10)
    assert json_text([1, 2], budget) == "[1,2]"
    assert budget.left == 5
    with pytest.raises(CellError, match="split the batch"):
        json_text([math.nan, 1, 2, 3], budget)  # over budget is said before NaN is seen


COLUMNS = [ColumnDef(id="j", name="J", type=ColumnType.JSON)]


def table() -> TableState:
    create = [CreateTable(name="T", columns=COLUMNS)]
    return plan_batch("t", None, create, next_sql=1, name_taken=lambda _: False).table


def test_one_batch_of_json_cells_is_bounded_as_a_whole() -> None:
    cell = ["x" * 1000] * 60  # ~60 KiB encoded: under the cell limit
    size = len(msgspec.json.encode(cell))
    fits = MAX_JSON_BATCH_BYTES // size
    rows = [NewRow(id=f"r{i}", values={"j": cell}) for i in range(fits)]
    plan_batch("t", table(), [InsertRows(rows=rows)], next_sql=9, name_taken=lambda _: False)
    over = [UpdateCells(row="r0", values={"j": cell})]
    with pytest.raises(BatchError) as info:
        plan_batch(
            "t", table(), [InsertRows(rows=rows), *over], next_sql=9, name_taken=lambda _: False
        )
    assert info.value.code == "type_mismatch" and info.value.op_index == 1
    assert "split the batch" in info.value.message


def reference_ok(value: Any) -> bool:
    """The rule, written plainly: the old per-element walk (containers count as levels)."""

    def depth(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(map(plain, v))
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return abs(v) <= 2**53
        return v is None or isinstance(v, (str, bool))

    return plain(value) and depth(value) <= MAX_JSON_DEPTH


def random_value(rng: random.Random, depth: int) -> Any:
    pick = rng.random()
    if depth < 36 and pick < 0.35:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if depth < 36 and pick < 0.55:
        keys: list[Any] = ["k", "[", '"', "\\", "{}", "]"]
        if rng.random() < 0.05:
            keys.append(1)
        return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    leaves: list[Any] = [
        None, True, False, 0, -1, 2**53, 2**53 + 1, -(2**53) - 1, 1.5, 1e300, math.nan,
        math.inf, "", "]]", '\\"[', "{", "1234567890123456789", b"b",
    ]  # fmt: skip
    return rng.choice(leaves)


def test_the_fast_check_agrees_with_the_plain_rule_on_random_values() -> None:
    rng = random.Random(20261202)
    for _ in range(3000):
        value = random_value(rng, 0)
        try:
            json_text(value)
            accepted = True
        except CellError:
            accepted = False
        assert accepted == reference_ok(value), value
