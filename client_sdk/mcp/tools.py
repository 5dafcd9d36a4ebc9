"""The agent tools, built on the SDK only: what each does, needs and answers.

How it works
------------
:class:`Gateway` runs one tool call in five steps:

1. validate the arguments against the tool's Struct (``schemas.py``);
2. resolve the table the call names (name or id) among the tables this key may see: an
   unresolved name is passed on as given, so the hub can refuse it for a table-limited key;
3. ``client.tool_calls.begin``: the hub records the call (tool, digest of the arguments,
   key) and checks the tool's scopes and table against the key *before* anything happens;
   a refusal is recorded and comes back as ``forbidden``;
4. the effect, through the SDK (the hub authorizes each message again on its own);
5. ``client.tool_calls.end`` records the outcome (``ok`` or the error code).

Errors come back as :class:`ToolError` with the hub's error code and message (or one of
this module's own: ``bad_arguments``, ``unknown_tool``, ``too_many_rows``,
``history_unavailable``, ``connection_lost``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from client_sdk.bulk import TooManyRows, matching_ids
from client_sdk.client import Client
from client_sdk.errors import ConnectionLost, HypertabError, ServerError
from client_sdk.mcp import schemas
from client_sdk.mcp.schemas import (
    AddColumnArgs,
    CreateTableArgs,
    DeleteRowsArgs,
    DescribeTableArgs,
    InsertRowsArgs,
    ListTablesArgs,
    QueryRowsArgs,
    ReadChangesArgs,
    RenameColumnArgs,
    SetFormulaArgs,
    UpdateRowsArgs,
)
from client_sdk.names import column_id_for
from client_sdk.table import chunked_batches, new_id
from protocol.limits import MAX_QUERY_LIMIT, MAX_ROWS_PER_OP
from protocol.messages import TableInfo
from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    CreateTable,
    DeleteRows,
    InsertRows,
    NewRow,
    Op,
    RenameColumn,
    Row,
    SetFormula,
    UpdateCells,
)

log = logging.getLogger(__name__)

READ = ("tables:read",)
WRITE = ("tables:write",)
SCHEMA = ("tables:write", "schema:write")


class ToolError(Exception):
    """A tool call failed: ``code`` (the hub's, or this module's) and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


Handler = Callable[["Gateway", Any, "TableInfo | None"], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, description, arguments, scopes and implementation."""

    name: str
    description: str
    args: type[Any]
    scopes: tuple[str, ...]
    run: Handler
    read_only: bool = False
    destructive: bool = False

    @property
    def input_schema(self) -> dict[str, Any]:
        """The JSON Schema the tool advertises."""
        return schemas.input_schema(self.args)


# --- shaping results -----------------------------------------------------------------------


def _names(info: TableInfo) -> dict[str, str]:
    return {c.id: c.name for c in info.columns}


def row_json(row: Row, names: dict[str, str]) -> dict[str, Any]:
    """A row as the model sees it: ``_id`` plus cells by column name."""
    return {"_id": row.id, **{names.get(cid, cid): v for cid, v in row.values.items()}}


def table_json(info: TableInfo) -> dict[str, Any]:
    """A table's schema as the model sees it."""
    return {
        "id": info.id,
        "name": info.name,
        "version": info.version,
        "columns": [
            {"id": c.id, "name": c.name, "type": c.type.value}
            | ({"formula": c.formula} if c.formula is not None else {})
            for c in info.columns
        ],
    }


def op_json(op: Op, names: dict[str, str]) -> dict[str, Any]:
    """A committed op as the model sees it (cells by column name)."""

    def by_name(values: dict[str, Any]) -> dict[str, Any]:
        return {names.get(cid, cid): v for cid, v in values.items()}

    match op:
        case InsertRows(rows=rows):
            return {"op": "insert", "rows": [{"_id": r.id, **by_name(r.values)} for r in rows]}
        case UpdateCells(row=rid, values=values):
            return {"op": "update", "_id": rid, "values": by_name(values)}
        case DeleteRows(rows=rids):
            return {"op": "delete", "ids": list(rids)}
        case _:
            data: dict[str, Any] = msgspec.to_builtins(op)
            return data


# --- the tools -----------------------------------------------------------------------------


async def _list_tables(gw: Gateway, args: ListTablesArgs, info: TableInfo | None) -> Any:
    tables = await gw.client.list_tables()
    return {
        "tables": [
            {"id": t.id, "name": t.name, "version": t.version, "columns": len(t.columns)}
            for t in tables
        ]
    }


async def _describe_table(gw: Gateway, args: DescribeTableArgs, info: TableInfo | None) -> Any:
    assert info is not None
    count = 0
    after: str | None = None
    while True:
        page = await gw.client.query(info.id, columns=["_id"], after=after, limit=MAX_QUERY_LIMIT)
        count += len(page.rows)
        if page.next is None:
            break
        after = page.next
    return {**table_json(info), "row_count": count}


async def _query_rows(gw: Gateway, args: QueryRowsArgs, info: TableInfo | None) -> Any:
    assert info is not None
    page = await gw.client.query(
        info.id,
        where=args.where,
        order_by=[(o.column, o.desc) for o in args.order_by],
        columns=args.columns,
        limit=args.limit,
        after=args.after,
    )
    names = _names(info)
    result: dict[str, Any] = {
        "table": info.id,
        "version": page.version,
        "rows": [row_json(r, names) for r in page.rows],
    }
    if page.next is not None:
        result["next"] = page.next
    return result


def _cells(info: TableInfo, values: dict[str, Any]) -> dict[str, Any]:
    by_name = {c.name: c.id for c in info.columns}
    ids = {c.id for c in info.columns}
    cells: dict[str, Any] = {}
    for key, value in values.items():
        if key in ids:
            cells[key] = value
        elif key in by_name:
            cells[by_name[key]] = value
        else:
            raise ToolError("unknown_column", f"table {info.name!r} has no column {key!r}")
    return cells


async def _apply(gw: Gateway, info: TableInfo, ops: list[Op]) -> int:
    version = info.version
    for batch in chunked_batches(ops, max_ops=gw.client.batch_ops):
        version = await gw.client.apply(info.id, batch)
    return version


async def _insert_rows(gw: Gateway, args: InsertRowsArgs, info: TableInfo | None) -> Any:
    assert info is not None
    rows = [NewRow(id=new_id(), values=_cells(info, values)) for values in args.rows]
    version = await _apply(gw, info, [InsertRows(rows=rows)])
    return {"inserted": len(rows), "ids": [r.id for r in rows], "version": version}


async def _matching(gw: Gateway, info: TableInfo, where: dict[str, Any], cap: int) -> list[str]:
    """Ids of the rows matching ``where``; ``too_many_rows`` past ``cap``."""
    try:
        return await matching_ids(gw.client, info.id, where, cap=cap)
    except TooManyRows:
        raise ToolError(
            "too_many_rows", f"the filter matches more than max_rows={cap} rows; nothing changed"
        ) from None


def _targets(args: UpdateRowsArgs | DeleteRowsArgs) -> None:
    if (args.ids is None) == (args.where is None):
        raise ToolError("bad_arguments", "give exactly one of ids or where")


async def _update_rows(gw: Gateway, args: UpdateRowsArgs, info: TableInfo | None) -> Any:
    assert info is not None
    _targets(args)
    cells = _cells(info, args.values)
    ids = (
        args.ids
        if args.ids is not None
        else await _matching(gw, info, args.where or {}, args.max_rows)
    )
    if not ids:
        return {"updated": 0, "ids": [], "version": info.version}
    version = await _apply(gw, info, [UpdateCells(row=rid, values=cells) for rid in ids])
    return {"updated": len(ids), "ids": ids, "version": version}


async def _delete_rows(gw: Gateway, args: DeleteRowsArgs, info: TableInfo | None) -> Any:
    assert info is not None
    _targets(args)
    ids = (
        args.ids
        if args.ids is not None
        else await _matching(gw, info, args.where or {}, args.max_rows)
    )
    if not ids:
        return {"deleted": 0, "ids": [], "version": info.version}
    ops: list[Op] = [
        DeleteRows(rows=ids[i : i + MAX_ROWS_PER_OP]) for i in range(0, len(ids), MAX_ROWS_PER_OP)
    ]
    version = await _apply(gw, info, ops)
    return {"deleted": len(ids), "ids": ids, "version": version}


def _column_def(name: str, kind: str, formula: str | None, taken: set[str]) -> ColumnDef:
    cid = column_id_for(name, taken)
    taken.add(cid)
    column_type = ColumnType.FORMULA if formula is not None else ColumnType(kind)
    return ColumnDef(id=cid, name=name, type=column_type, formula=formula)


async def _create_table(gw: Gateway, args: CreateTableArgs, info: TableInfo | None) -> Any:
    taken: set[str] = set()
    columns = [_column_def(c.name, c.type, c.formula, taken) for c in args.columns]
    assert info is not None  # a placeholder carrying the new table's id
    tid = info.id
    version = await gw.client.apply(tid, [CreateTable(name=args.name, columns=columns)])
    return table_json(TableInfo(id=tid, name=args.name, version=version, columns=columns))


async def _schema_change(gw: Gateway, info: TableInfo, op: Op) -> Any:
    await gw.client.apply(info.id, [op])
    fresh = await gw.resolve(info.id)
    return table_json(fresh or info)


def _column(info: TableInfo, ref: str) -> str:
    for column in info.columns:
        if column.id == ref:
            return column.id
    for column in info.columns:
        if column.name == ref:
            return column.id
    raise ToolError("unknown_column", f"table {info.name!r} has no column {ref!r}")


async def _add_column(gw: Gateway, args: AddColumnArgs, info: TableInfo | None) -> Any:
    assert info is not None
    column = _column_def(args.name, args.type, args.formula, {c.id for c in info.columns})
    return await _schema_change(gw, info, AddColumn(column=column))


async def _rename_column(gw: Gateway, args: RenameColumnArgs, info: TableInfo | None) -> Any:
    assert info is not None
    op = RenameColumn(column=_column(info, args.column), name=args.new_name)
    return await _schema_change(gw, info, op)


async def _set_formula(gw: Gateway, args: SetFormulaArgs, info: TableInfo | None) -> Any:
    assert info is not None
    op = SetFormula(column=_column(info, args.column), formula=args.formula)
    return await _schema_change(gw, info, op)


async def _read_changes(gw: Gateway, args: ReadChangesArgs, info: TableInfo | None) -> Any:
    assert info is not None
    changes = await gw.client.changes_since(info.id, args.since)
    if changes is None:
        raise ToolError(
            "history_unavailable",
            f"the change history no longer reaches back to version {args.since}; "
            "read the rows with query_rows instead",
        )
    names = _names(info)
    shown = changes[: args.limit]
    result: dict[str, Any] = {
        "table": info.id,
        "since": args.since,
        "changes": [
            {"version": c.version, "by": c.by, "ops": [op_json(op, names) for op in c.ops]}
            for c in shown
        ],
        "version": shown[-1].version if shown else args.since,
    }
    if len(changes) > len(shown):
        result["more"] = True
    return result


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "list_tables",
            "List the tables this key may see: id, name, version, number of columns.",
            ListTablesArgs,
            READ,
            _list_tables,
            read_only=True,
        ),
        ToolSpec(
            "describe_table",
            "A table's columns (id, name, type, formula), current version and row count.",
            DescribeTableArgs,
            READ,
            _describe_table,
            read_only=True,
        ),
        ToolSpec(
            "query_rows",
            "Read rows: optional filter (where), sort (order_by), columns and paging "
            "(limit, then after=next). Rows come as {_id, <column name>: value}.",
            QueryRowsArgs,
            READ,
            _query_rows,
            read_only=True,
        ),
        ToolSpec(
            "insert_rows",
            "Append rows (cells by column name); returns their ids. Atomic.",
            InsertRowsArgs,
            WRITE,
            _insert_rows,
        ),
        ToolSpec(
            "update_rows",
            "Set cells of rows chosen by ids or by a filter (where). A filter matching more "
            "than max_rows rows changes nothing and fails with too_many_rows.",
            UpdateRowsArgs,
            WRITE,
            _update_rows,
            destructive=True,
        ),
        ToolSpec(
            "delete_rows",
            "Delete rows chosen by ids or by a filter (where), capped by max_rows. A deleted "
            "row stays deleted.",
            DeleteRowsArgs,
            WRITE,
            _delete_rows,
            destructive=True,
        ),
        ToolSpec(
            "create_table",
            "Create a table with columns (needs schema:write).",
            CreateTableArgs,
            SCHEMA,
            _create_table,
        ),
        ToolSpec(
            "add_column",
            "Add a column, or a formula column with formula (needs schema:write).",
            AddColumnArgs,
            SCHEMA,
            _add_column,
        ),
        ToolSpec(
            "rename_column",
            "Rename a column; formulas using it keep working (needs schema:write).",
            RenameColumnArgs,
            SCHEMA,
            _rename_column,
            destructive=True,
        ),
        ToolSpec(
            "set_formula",
            "Set a formula column's formula; values are recomputed (needs schema:write).",
            SetFormulaArgs,
            SCHEMA,
            _set_formula,
            destructive=True,
        ),
        ToolSpec(
            "read_changes",
            "The committed changes of a table after version since (from describe_table or "
            "a previous read_changes), oldest first, cells by column name.",
            ReadChangesArgs,
            READ,
            _read_changes,
            read_only=True,
        ),
    )
}
"""Every tool, by name."""


async def _table_schema(gw: Gateway, args: DescribeTableArgs, info: TableInfo | None) -> Any:
    assert info is not None
    return table_json(info)


SCHEMA_RESOURCE = ToolSpec(
    "read_resource",
    "A table's schema resource (hypertab://tables/<id>), audited like a tool call.",
    DescribeTableArgs,
    READ,
    _table_schema,
    read_only=True,
)
"""Resource reads run (and are recorded) as this pseudo-tool; it is not listed as a tool."""


class Gateway:
    """Runs tool calls for one agent over one SDK client, auditing each in the hub."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def resolve(self, ref: str) -> TableInfo | None:
        """The table named by id or name among those this key may see."""
        tables = await self.client.list_tables()
        return next((t for t in tables if t.id == ref), None) or next(
            (t for t in tables if t.name == ref), None
        )

    async def call(self, name: str, raw: dict[str, Any] | None) -> Any:
        """Run one tool call (audited); its JSON result, or :class:`ToolError`."""
        spec = TOOLS.get(name)
        if spec is None:
            raise ToolError("unknown_tool", f"no tool {name!r}")
        try:
            args = schemas.parse(spec.args, raw)
        except msgspec.ValidationError as exc:
            await self._record_refused_arguments(spec, raw)
            raise ToolError("bad_arguments", str(exc)) from None
        try:
            return await self._run(spec, args, raw)
        except ConnectionLost as exc:
            raise ToolError("connection_lost", f"not connected to the hub ({exc})") from None

    async def read_schema(self, ref: str) -> Any:
        """The schema resource of a table (by id or name), audited as ``read_resource``."""
        try:
            return await self._run(SCHEMA_RESOURCE, DescribeTableArgs(table=ref), {"table": ref})
        except ConnectionLost as exc:
            raise ToolError("connection_lost", f"not connected to the hub ({exc})") from None

    async def _record_refused_arguments(self, spec: ToolSpec, raw: Any) -> None:
        """Invalid arguments: the call is still recorded, with its outcome."""
        try:
            call = await self.client.tool_calls.begin(spec.name, raw, scopes=spec.scopes)
            await self.client.tool_calls.end(call, error="bad_arguments")
        except HypertabError:
            pass  # refused (recorded as such) or not connected: nothing ran either way

    async def _run(self, spec: ToolSpec, args: Any, raw: Any) -> Any:
        info: TableInfo | None = None
        tables: list[str] = []
        ref: str | None = getattr(args, "table", None)
        if ref is not None:
            info = await self.resolve(ref)
            tables = [info.id if info is not None else ref]
        elif isinstance(args, CreateTableArgs):
            info = TableInfo(id=new_id(), name=args.name, version=0)  # made before the audit
            tables = [info.id]
        try:
            call = await self.client.tool_calls.begin(
                spec.name, raw, scopes=spec.scopes, tables=tables
            )
        except ServerError as exc:
            raise ToolError(exc.code, exc.message) from None
        try:
            if ref is not None and info is None:
                raise ToolError("unknown_table", f"no table {ref!r}")
            result = await spec.run(self, args, info)
        except ServerError as exc:
            await self._end(call, exc.code)
            raise ToolError(exc.code, exc.message) from None
        except ToolError as exc:
            await self._end(call, exc.code)
            raise
        await self._end(call, None)
        return result

    async def _end(self, call: str, error: str | None) -> None:
        try:
            await self.client.tool_calls.end(call, error=error)
        except HypertabError as exc:
            log.warning("tool result not recorded (%s)", type(exc).__name__)
