"""Formula columns in the op engine (pure) and the tenant store (real SQLite files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.messages import Change
from protocol.ops import (
    ColumnDef,
    ColumnType,
    CreateTable,
    InsertRows,
    MoveRow,
    NewRow,
    RenameColumn,
    SetFormula,
    UpdateCells,
)
from server.engine.batch import BatchError, plan_batch
from server.engine.formula_renames import rewrite_references
from server.formula import DEFAULT_LIMITS
from server.store.formulas import FormulaRuntime, formula_input, to_wire
from server.store.schema import Durability
from server.store.tenant import TenantStore

TENANT = "formulatenant01"


def fcol(cid: str, text: str) -> ColumnDef:
    return ColumnDef(id=cid, name=cid, type=ColumnType.FORMULA, formula=text)


def num(cid: str) -> ColumnDef:
    return ColumnDef(id=cid, name=cid, type=ColumnType.NUMBER)


def test_check_hook_names_the_failing_op() -> None:
    runtime = FormulaRuntime()
    ops = [CreateTable(name="T", columns=[num("a"), fcol("b", "{a}+1"), fcol("c", "{b}")])]
    plan = plan_batch(
        "t", None, list(ops), next_sql=1, name_taken=lambda n: False, check_formula=runtime.check
    )
    with pytest.raises(BatchError) as err:
        plan_batch(
            "t",
            plan.table,
            [UpdateCells(row="r", values={"a": 1}), SetFormula(column="b", formula="{c} * 2")],
            next_sql=plan.next_sql,
            name_taken=lambda n: False,
            check_formula=runtime.check,
        )
    assert (err.value.code, err.value.op_index) == ("formula_error", 1)
    assert "'b' -> 'c' -> 'b'" in err.value.message


def test_rewrite_only_references_to_the_renamed_column() -> None:
    before = {"Qty": "q", "qty2": "q2"}
    after = {"Count": "q", "qty2": "q2"}
    text = '{Qty} + {qty2} & "{Qty}" + SUM({ QTY })'
    assert (
        rewrite_references(text, before, after, DEFAULT_LIMITS, "q")
        == '{Count} + {qty2} & "{Qty}" + SUM({Count})'
    )


def test_rewrite_to_a_spaced_name_keeps_the_spaces() -> None:
    before = {"Qty": "q", "Price": "p"}
    after = {" Qty ": "q", "Price": "p"}
    assert rewrite_references("{Qty} * {Price}", before, after, DEFAULT_LIMITS, "q") == (
        "{ Qty } * {Price}"
    )


def test_rewrite_fixes_references_a_new_name_would_capture() -> None:
    # {qty} meant Qty (its only case-insensitive match); renaming x to "qty" would capture
    # it, so it is spelled out exactly; the renamed column's own reference follows it.
    before = {"Qty": "q", "x": "x"}
    after = {"Qty": "q", "qty": "x"}
    assert rewrite_references("{qty} + {x}", before, after, DEFAULT_LIMITS, "x") == (
        "{Qty} + {qty}"
    )


def test_wire_form_of_computed_values_round_trips() -> None:
    from server.formula import DIV0

    for value in (None, 1, 2.5, "x", True, False, DIV0):
        assert formula_input(to_wire(value)) == value
    assert to_wire(True) == "TRUE"
    assert to_wire(DIV0) == "#DIV/0!"


async def open_store(path: Path, runtime: FormulaRuntime, log: list[Change]) -> TenantStore:
    def on_commit(tenant: str, table: str, changes: list[Change]) -> None:
        log.extend(changes)

    return await TenantStore.open(
        TENANT,
        path / "t.db",
        durability=Durability.PROCESS,
        on_commit=on_commit,
        check_formula=runtime.check,
        recompute=runtime.recompute,
    )


async def test_pass_budget_ends_remaining_cells_as_limit(tmp_path: Path) -> None:
    runtime = FormulaRuntime(pass_steps=300)  # "{a} * 2" costs 3 steps per cell
    log: list[Change] = []
    store = await open_store(tmp_path, runtime, log)
    try:
        out = await store.apply("t", "c", "1", [CreateTable(name="T", columns=[num("a")])], "x")
        assert out.error is None
        rows = [NewRow(id=f"r{i:03}", values={"a": i}) for i in range(200)]
        out = await store.apply("t", "c", "2", [InsertRows(rows=rows)], "x")
        assert out.error is None
        from protocol.ops import AddColumn

        out = await store.apply("t", "c", "3", [AddColumn(column=fcol("b", "{a} * 2"))], "x")
        assert out.error is None and out.change is not None
        values = {op.row: op.values["b"] for op in out.change.ops if isinstance(op, UpdateCells)}
        assert values["r000"] == 0 and values["r050"] == 100
        assert values["r199"] == "#LIMIT!"
        limited = sum(1 for v in values.values() if v == "#LIMIT!")
        assert 0 < limited < 200
        # Only rows whose value changed are broadcast: an edit touches one cell.
        out = await store.apply("t", "c", "4", [UpdateCells(row="r001", values={"a": 5})], "x")
        assert out.change is not None
        assert out.change.ops[1:] == [UpdateCells(row="r001", values={"b": 10})]
    finally:
        await store.close()


async def test_lookups_follow_row_order(tmp_path: Path) -> None:
    runtime = FormulaRuntime()
    log: list[Change] = []
    store = await open_store(tmp_path, runtime, log)
    try:
        cols = [num("a"), fcol("first", "INDEX({a}, 1)")]
        await store.apply("t", "c", "1", [CreateTable(name="T", columns=cols)], "x")
        rows = [NewRow(id="r1", values={"a": 1}), NewRow(id="r2", values={"a": 2})]
        out = await store.apply("t", "c", "2", [InsertRows(rows=rows)], "x")
        assert out.change is not None
        out = await store.apply("t", "c", "3", [MoveRow(row="r2", before="r1")], "x")
        assert out.change is not None
        moved = {op.row: op.values for op in out.change.ops if isinstance(op, UpdateCells)}
        assert moved == {"r1": {"first": 2}, "r2": {"first": 2}}
    finally:
        await store.close()


async def test_rename_to_a_spaced_name_keeps_formulas_recomputing(tmp_path: Path) -> None:
    """The reported case: renaming an input to a name with surrounding spaces left the
    dependent formula unable to reference it (10 stayed 10 after the input became 7)."""
    runtime = FormulaRuntime()
    log: list[Change] = []
    store = await open_store(tmp_path, runtime, log)
    try:
        cols = [
            ColumnDef(id="q", name="Qty", type=ColumnType.NUMBER),
            ColumnDef(id="p", name="Price", type=ColumnType.NUMBER),
            ColumnDef(id="t", name="Total", type=ColumnType.FORMULA, formula="{Qty} * {Price}"),
            ColumnDef(
                id="s", name="Sum", type=ColumnType.FORMULA, formula="SUMIF({qty}, 2, {Total})"
            ),
        ]
        out = await store.apply("t", "c", "1", [CreateTable(name="T", columns=cols)], "x")
        assert out.error is None
        out = await store.apply(
            "t", "c", "2", [InsertRows(rows=[NewRow(id="r", values={"q": 2, "p": 5})])], "x"
        )
        assert out.error is None and out.change is not None
        assert UpdateCells(row="r", values={"t": 10, "s": 10}) in out.change.ops
        out = await store.apply("t", "c", "3", [RenameColumn(column="q", name="  Qty ")], "x")
        assert out.error is None and out.change is not None
        rewritten = {op.column: op.formula for op in out.change.ops if isinstance(op, SetFormula)}
        assert rewritten == {"t": "{  Qty } * {Price}", "s": "SUMIF({  Qty }, 2, {Total})"}
        # Renaming Price to "qty" must not capture anything: {  Qty } is spelled exactly.
        out = await store.apply("t", "c", "4", [RenameColumn(column="p", name="qty")], "x")
        assert out.error is None and out.change is not None
        rewritten = {op.column: op.formula for op in out.change.ops if isinstance(op, SetFormula)}
        assert rewritten == {"t": "{  Qty } * {qty}"}
        out = await store.apply("t", "c", "5", [UpdateCells(row="r", values={"q": 7})], "x")
        assert out.error is None and out.change is not None
        # Total follows the input; Sum (SUMIF over the renamed column) too: 7 is not 2.
        assert out.change.ops[1:] == [UpdateCells(row="r", values={"t": 35, "s": 0})]
    finally:
        await store.close()
    # After a restart the stored, rewritten text still computes.
    store = await open_store(tmp_path, FormulaRuntime(), log)
    try:
        out = await store.apply("t", "c", "6", [UpdateCells(row="r", values={"p": 3})], "x")
        assert out.error is None and out.change is not None
        assert out.change.ops[1:] == [UpdateCells(row="r", values={"t": 21})]
        read = await store.snapshot("t")
        assert read is not None
        assert read.rows[0].values == {"q": 7, "p": 3, "t": 21, "s": 0}
        assert read.table.column("t") is not None
    finally:
        await store.close()
