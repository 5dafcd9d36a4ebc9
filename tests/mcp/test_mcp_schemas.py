"""The tools' input schemas are valid JSON Schema and say what the gateway accepts (pure)."""

from __future__ import annotations

from typing import Any

import jsonschema
import msgspec
import pytest

from client_sdk.mcp import schemas
from client_sdk.mcp.tools import TOOLS

GOOD: dict[str, dict[str, Any]] = {
    "list_tables": {},
    "describe_table": {"table": "People"},
    "query_rows": {
        "table": "People",
        "where": {"op": "not", "arg": {"op": "in", "column": "Age", "values": [1, 2]}},
        "order_by": [{"column": "Age", "desc": True}],
        "columns": ["Name"],
        "limit": 10,
    },
    "insert_rows": {"table": "People", "rows": [{"Name": "Ada", "Age": 36}]},
    "update_rows": {"table": "People", "ids": ["r1"], "values": {"Age": 37}},
    "delete_rows": {"table": "People", "where": {"op": "is_null", "column": "Age"}},
    "create_table": {"name": "T", "columns": [{"name": "A", "type": "number"}]},
    "add_column": {"table": "T", "name": "B", "formula": "{A} * 2"},
    "rename_column": {"table": "T", "column": "A", "new_name": "C"},
    "set_formula": {"table": "T", "column": "B", "formula": "{C} + 1"},
    "read_changes": {"table": "T", "since": 3},
}

BAD: list[tuple[str, dict[str, Any]]] = [
    ("describe_table", {}),
    ("query_rows", {"table": "People", "limit": 501}),
    ("query_rows", {"table": "People", "extra": 1}),
    ("query_rows", {"table": "People", "where": {"op": "eq", "column": "A"}}),
    ("insert_rows", {"table": "People", "rows": []}),
    ("update_rows", {"table": "People", "values": {}}),
    ("update_rows", {"table": "People", "ids": ["bad id!"], "values": {"A": 1}}),
    ("create_table", {"name": "T", "columns": [{"name": "A", "type": "money"}]}),
    ("read_changes", {"table": "T", "since": -1}),
]


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_schema_is_valid_and_accepts_a_good_call(name: str) -> None:
    schema = TOOLS[name].input_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    jsonschema.validate(GOOD[name], schema)
    schemas.parse(TOOLS[name].args, GOOD[name])
    assert TOOLS[name].description


@pytest.mark.parametrize(("name", "args"), BAD)
def test_a_bad_call_is_refused_by_the_schema(name: str, args: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(args, TOOLS[name].input_schema)
    if "where" not in args:  # the hub validates filters itself
        with pytest.raises(msgspec.ValidationError):
            schemas.parse(TOOLS[name].args, args)
