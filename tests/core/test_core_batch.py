"""Planning a batch against a table's schema (pure: no SQLite, no event loop)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    CreateTable,
    DeleteRows,
    DropColumn,
    DropTable,
    InsertRows,
    MoveRow,
    NewRow,
    RenameColumn,
    RenameTable,
    UpdateCells,
)
from server.engine.batch import BatchError, InsertRowsStep, UpdateRowStep, plan_batch
from server.engine.catalog import TableState

COLUMNS = [
    ColumnDef(id="name", name="Name", type=ColumnType.TEXT),
    ColumnDef(id="age", name="Age", type=ColumnType.NUMBER),
    ColumnDef(id="ok", name="OK", type=ColumnType.BOOLEAN),
    ColumnDef(id="when", name="When", type=ColumnType.DATETIME),
    ColumnDef(id="meta", name="Meta", type=ColumnType.JSON),
]


def never(_: str) -> bool:
    return False


def created() -> TableState:
    plan = plan_batch(
        "t1", None, [CreateTable(name="People", columns=COLUMNS)], next_sql=1, name_taken=never
    )
    return plan.table


def refused(ops: list[Any], table: TableState | None = None) -> BatchError:
    with pytest.raises(BatchError) as info:
        plan_batch("t1", table or created(), ops, next_sql=100, name_taken=never)
    return info.value


def test_create_allocates_sql_names_not_from_user_text() -> None:
    table = created()
    assert table.sql == "t_1"
    assert [c.sql for c in table.columns] == ["c_2", "c_3", "c_4", "c_5", "c_6"]
    assert table.version == 1


def test_names_with_sql_in_them_never_become_sql() -> None:
    evil = 'x"; DROP TABLE _ht_tables; --'
    plan = plan_batch(
        "t1",
        None,
        [CreateTable(name=evil, columns=[ColumnDef(id="c", name=evil, type=ColumnType.TEXT)])],
        next_sql=1,
        name_taken=never,
    )
    assert plan.table.name == evil
    assert plan.table.sql == "t_1" and plan.table.columns[0].sql == "c_2"


def test_values_are_checked_against_types() -> None:
    assert refused([UpdateCells(row="r", values={"age": "old"})]).code == "type_mismatch"
    assert refused([UpdateCells(row="r", values={"ok": 1})]).code == "type_mismatch"
    assert refused([UpdateCells(row="r", values={"age": True})]).code == "type_mismatch"
    assert refused([UpdateCells(row="r", values={"age": math.nan})]).code == "type_mismatch"
    assert refused([UpdateCells(row="r", values={"when": "yesterday"})]).code == "type_mismatch"
    assert refused([UpdateCells(row="r", values={"meta": {"x": math.inf}})]).code == (
        "type_mismatch"
    )
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    assert refused([UpdateCells(row="r", values={"meta": deep})]).code == "type_mismatch"


def test_storage_forms() -> None:
    plan = plan_batch(
        "t1",
        created(),
        [UpdateCells(row="r", values={"ok": True, "meta": {"a": [1]}, "when": "2024-01-02"})],
        next_sql=100,
        name_taken=never,
    )
    step = plan.steps[0]
    assert isinstance(step, UpdateRowStep)
    assert dict(step.cells) == {"c_4": 1, "c_6": '{"a":[1]}', "c_5": "2024-01-02"}


def test_unknown_column_names_the_op() -> None:
    error = refused(
        [UpdateCells(row="r", values={"age": 1}), UpdateCells(row="r", values={"nope": 1})]
    )
    assert (error.code, error.op_index) == ("unknown_column", 1)


def test_schema_evolves_within_a_batch() -> None:
    plan = plan_batch(
        "t1",
        created(),
        [
            AddColumn(column=ColumnDef(id="x", name="X", type=ColumnType.TEXT)),
            UpdateCells(row="r", values={"x": "now valid"}),
            RenameColumn(column="x", name="Renamed"),
            DropColumn(column="age"),
            RenameTable(name="Humans"),
        ],
        next_sql=100,
        name_taken=never,
    )
    assert plan.table.name == "Humans"
    assert plan.table.column("x") is not None and plan.table.column("x").name == "Renamed"  # type: ignore[union-attr]
    assert plan.table.column("age") is None
    assert refused([DropColumn(column="age"), UpdateCells(row="r", values={"age": 1})]).code == (
        "unknown_column"
    )


def test_table_rules() -> None:
    assert refused([CreateTable(name="Again")]).code == "table_exists"
    with pytest.raises(BatchError) as info:
        plan_batch(
            "t9", None, [UpdateCells(row="r", values={"a": 1})], next_sql=1, name_taken=never
        )
    assert info.value.code == "unknown_table"
    with pytest.raises(BatchError) as info:
        plan_batch(
            "t9", None, [CreateTable(name="Taken")], next_sql=1, name_taken=lambda n: n == "Taken"
        )
    assert info.value.code == "table_exists"
    assert refused([DropTable(), InsertRows(rows=[NewRow()])]).code == "unknown_table"
    duplicate = AddColumn(column=ColumnDef(id="name", name="Other", type=ColumnType.TEXT))
    assert refused([duplicate]).code == "column_exists"


def test_row_op_rules() -> None:
    assert refused([InsertRows(rows=[NewRow(id="a"), NewRow(id="a")])]).code == "row_exists"
    assert refused([InsertRows(rows=[NewRow(after="a", before="b")])]).code == "invalid_op"
    assert refused([DeleteRows(rows=["a", "a"])]).code == "invalid_op"
    assert refused([MoveRow(row="a", after="a")]).code == "invalid_op"


def test_formula_columns_are_read_only_and_refused_without_an_engine() -> None:
    formula = ColumnDef(id="f", name="F", type=ColumnType.FORMULA, formula="{Age} * 2")
    assert refused([AddColumn(column=formula)]).code == "formula_error"
    missing = ColumnDef(id="f", name="F", type=ColumnType.FORMULA)
    assert refused([AddColumn(column=missing)]).code == "invalid_op"


def test_insert_step_carries_storage_values() -> None:
    plan = plan_batch(
        "t1",
        created(),
        [InsertRows(rows=[NewRow(id="r", values={"ok": False})])],
        next_sql=100,
        name_taken=never,
    )
    step = plan.steps[0]
    assert isinstance(step, InsertRowsStep)
    assert step.cells == ((("c_4", 0),),)
