"""The message table: one row per client message type, and rows that agree with the types."""

from __future__ import annotations

import asyncio
import importlib
import typing
from collections import Counter
from typing import Any

import msgspec
import pytest

from protocol.audit import AuditExport, ToolCall, ToolResult
from protocol.messages import Apply, ClientMessage, ListTables, Ping, Presence, Query
from protocol.ops import UpdateCells
from server.hub.admission import message_cost
from server.hub.messages import MESSAGE_TYPES, TABLE, TableRule

CLIENT_TYPES = typing.get_args(ClientMessage)


def fields(kind: Any) -> set[str]:
    return {f.name for f in msgspec.inspect.type_info(kind).fields}


def test_every_client_message_type_has_exactly_one_row() -> None:
    rows = Counter(row.kind for row in TABLE)
    assert {kind: n for kind, n in rows.items() if n != 1} == {}
    assert set(rows) == set(CLIENT_TYPES)  # no type missing, none the codec cannot decode


@pytest.mark.parametrize("kind", CLIENT_TYPES, ids=lambda k: k.__name__)
def test_a_row_names_a_table_rule_exactly_when_the_type_has_a_table(kind: Any) -> None:
    row = MESSAGE_TYPES[kind]
    assert (row.table is not TableRule.NONE) == ("table" in fields(kind))
    assert row.cost_per_op <= ("ops" in fields(kind))
    assert not row.schema_scopes or "ops" in fields(kind)
    assert row.subscribed <= (row.table is TableRule.FIELD)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.kind.__name__)
def test_every_handler_the_table_names_exists_and_is_async(row: Any) -> None:
    module, _, name = row.handler.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    assert asyncio.iscoroutinefunction(target)


def test_what_a_message_costs_against_the_plan() -> None:
    ops = [UpdateCells(row=f"r{n}", values={"a": n}) for n in range(7)]
    assert message_cost(Apply(id=1, table="t1", client="c", op="o", ops=ops)) == 7
    assert message_cost(ToolCall(id=1, tool="search")) == 1  # each writes an audit entry
    assert message_cost(AuditExport(id=1)) == 1
    for free in (
        Ping(id=1),
        ListTables(id=1),
        Query(id=1, table="t1"),
        ToolResult(id=1, call="c", outcome="ok"),
    ):
        assert message_cost(free) == 0  # the connection's burst limit alone
    assert message_cost(Presence(table="t1", state={})) == 0
