"""The MCP tools' arguments: msgspec Structs that both validate a call and give the JSON
Schema each tool advertises (``input_schema``), so what a model is told and what is
accepted can never drift apart. The ``where`` filter's schema is written out by hand (a
recursive tagged union); the hub validates the filter itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from protocol.limits import MAX_FORMULA_CHARS, MAX_ROWS_PER_OP

MAX_QUERY_PAGE = 500
"""Most rows one ``query_rows`` call returns (the model's context is the limit)."""

DEFAULT_MAX_ROWS = 100
"""Default cap on the rows an ``update_rows`` / ``delete_rows`` by filter may touch."""

TableRef = Annotated[str, Meta(min_length=1, max_length=128, description="The table's name or id.")]
ColumnRef = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description='A column name or id; "_id" is the row id.',
    ),
]
ColumnName = Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]{1,128}$", description="Column name.")]
RowId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A row id (_id).")]
Formula = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_FORMULA_CHARS,
        description="Formula text, columns referred to as {Column name}, e.g. {Price} * {Qty}.",
    ),
]
ColumnKind = Literal["text", "number", "boolean", "datetime", "json"]
Cells = Annotated[
    dict[str, Any],
    Meta(description="Cell values by column name (or id); null clears a cell."),
]
Where = Annotated[dict[str, Any], Meta(description="A row filter (see the schema of Filter).")]
MaxRows = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_ROWS_PER_OP,
        description="Refuse (and change nothing) if the filter matches more rows than this.",
    ),
]


class _Args(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class ListTablesArgs(_Args):
    """No arguments."""


class DescribeTableArgs(_Args):
    """Which table."""

    table: TableRef


class OrderBy(_Args):
    """One sort key."""

    column: ColumnRef
    desc: bool = False


_AFTER = "The `next` cursor of the previous page; repeat the same where, order_by and columns."


class QueryRowsArgs(_Args):
    """A page of rows: filter, sort, columns, paging."""

    table: TableRef
    where: Where | None = None
    order_by: list[OrderBy] = []
    columns: Annotated[list[ColumnRef], Meta(description="Only these columns.")] | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_QUERY_PAGE)] = 50
    after: Annotated[str, Meta(description="The `next` cursor of the previous page.")] | None = None


class InsertRowsArgs(_Args):
    """Rows to append."""

    table: TableRef
    rows: Annotated[list[Cells], Meta(min_length=1, max_length=MAX_ROWS_PER_OP)]


class UpdateRowsArgs(_Args):
    """Set cells of the rows named by ``ids`` or matched by ``where`` (exactly one)."""

    table: TableRef
    values: Annotated[Cells, Meta(min_length=1)]
    ids: Annotated[list[RowId], Meta(min_length=1, max_length=MAX_ROWS_PER_OP)] | None = None
    where: Where | None = None
    max_rows: MaxRows = DEFAULT_MAX_ROWS


class DeleteRowsArgs(_Args):
    """Delete the rows named by ``ids`` or matched by ``where`` (exactly one)."""

    table: TableRef
    ids: Annotated[list[RowId], Meta(min_length=1, max_length=MAX_ROWS_PER_OP)] | None = None
    where: Where | None = None
    max_rows: MaxRows = DEFAULT_MAX_ROWS


class ColumnSpec(_Args):
    """A new column: a ``type``, or a ``formula`` for a computed column."""

    name: ColumnName
    type: ColumnKind = "text"
    formula: Formula | None = None


class CreateTableArgs(_Args):
    """A new table."""

    name: Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]{1,128}$", description="Table name.")]
    columns: Annotated[list[ColumnSpec], Meta(max_length=256)] = []


class AddColumnArgs(_Args):
    """A column to add."""

    table: TableRef
    name: ColumnName
    type: ColumnKind = "text"
    formula: Formula | None = None


class RenameColumnArgs(_Args):
    """A column to rename; formulas using it keep working."""

    table: TableRef
    column: ColumnRef
    new_name: ColumnName


class SetFormulaArgs(_Args):
    """A formula column's new formula."""

    table: TableRef
    column: ColumnRef
    formula: Formula


class ReadChangesArgs(_Args):
    """Committed changes after a version."""

    table: TableRef
    since: Annotated[int, Meta(ge=0, description="A version from describe_table or here.")]
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}

FILTER_SCHEMA: dict[str, Any] = {
    "description": 'A row filter, tagged by op. Columns by name or id; "_id" is the row id.',
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "op": {"enum": ["and", "or"]},
                "args": {"type": "array", "items": {"$ref": "#/$defs/Filter"}, "minItems": 1},
            },
            "required": ["op", "args"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"op": {"const": "not"}, "arg": {"$ref": "#/$defs/Filter"}},
            "required": ["op", "arg"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "op": {"enum": ["eq", "ne", "lt", "le", "gt", "ge"]},
                "column": {"type": "string"},
                "value": _SCALAR,
            },
            "required": ["op", "column", "value"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"op": {"const": "is_null"}, "column": {"type": "string"}},
            "required": ["op", "column"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "op": {"const": "in"},
                "column": {"type": "string"},
                "values": {"type": "array", "items": _SCALAR},
            },
            "required": ["op", "column", "values"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "op": {"enum": ["contains", "starts_with"]},
                "column": {"type": "string"},
                "value": {"type": "string"},
            },
            "required": ["op", "column", "value"],
            "additionalProperties": False,
        },
    ],
}


def input_schema(args: type[_Args]) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a tool's arguments: an object at the root."""
    (_,), components = msgspec.json.schema_components([args], ref_template="#/$defs/{name}")
    root = dict(components.pop(args.__name__))
    root.pop("title", None)
    properties = root.get("properties", {})
    if "where" in properties:
        properties["where"] = {"$ref": "#/$defs/Filter"}
        components["Filter"] = FILTER_SCHEMA
    if components:
        root["$defs"] = components
    return root


def parse(args: type[_Args], raw: dict[str, Any] | None) -> Any:
    """Validate a call's arguments; ``msgspec.ValidationError`` says what is wrong."""
    return msgspec.convert(raw or {}, args, strict=True)
