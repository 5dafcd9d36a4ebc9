"""Formula engine throughput: recompute a formula column over 100,000 rows.

Prints one JSON line: cell evaluations per second for a simple formula (``{a} * {b} + 1``),
a heavy one (IF / text / ROUND / TEXT nesting), an aggregate one (``{a} / SUM({a})``) and
one calling a custom function, plus the one-off compile time; then the spreadsheet
functions over the same rows: a wildcard ``SEARCH`` per row, ``COUNTIF`` with the row's own
value as criterion (group counts), ``SUMIF`` with a constant comparison, and ``SUMIFS`` with
a per-row equality and a wildcard criterion. Every pass gets a fresh evaluation context,
so the figures include building the groupings once per pass. Run:
``.venv/bin/python bench/formula.py [--rows N] [--cpu-time] [--repeat N] [--code DIR]``
(``--code`` measures another checkout's engine with this bench, for before/after).

``--store`` measures through a real ``TenantStore`` (SQLite file, group commit) with the
formula hooks the hub installs, and prints a second JSON line:

* ``set_formula_rows_per_s``: ``add_column`` of ``{a} * {b} + 1`` on a table of ``--rows``
  rows, i.e. one recompute pass over the whole column inside the transaction (evaluate,
  write the SQL column, build the broadcast ``update_cells`` ops, op log), ack to ack;
* ``edit_ops_per_s_hooks`` / ``edit_ops_per_s_plain``: the hot path, 64 producers sending
  single-op batches (bench/commit.py's mix: 3/4 updates, 1/4 inserts) to a table WITHOUT
  formula columns, with the hooks installed and without; best of 3 interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The checkout whose engine is measured: this one, or ``--code DIR`` (read before the engine
# is imported, so a before/after comparison runs this same bench on both).
sys.path.insert(
    0,
    str(
        Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
        if "--code" in sys.argv[:-1]
        else Path(__file__).resolve().parent.parent
    ),
)

from protocol.messages import Change
from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    CreateTable,
    InsertRows,
    NewRow,
    Op,
    UpdateCells,
)
from server.formula import (
    BUILTINS,
    CellValue,
    EvalContext,
    Formula,
    FunctionRegistry,
    compile_formula,
)
from server.store.formulas import FormulaRuntime
from server.store.schema import Durability
from server.store.tenant import TenantStore

SIMPLE = "{a} * {b} + 1"
HEAVY = (
    'IF({a} > 50, UPPER(LEFT({name}, 3)) & "-" & TEXT(ROUND({a} * {b} / 7, 2), "0.00"), '
    'IF(ISBLANK({b}), "none", LOWER(TRIM({name})) & ROUND({b} / 3, 1)))'
)
AGGREGATE = "{a} / SUM({a})"
CUSTOM = "MARGIN({a} + 1, {b})"
SPREADSHEET = {
    "search_wildcard": 'SEARCH("*a?e*", {name})',
    "countif_row": "COUNTIF({a}, {a})",
    "sumif_constant": 'SUMIF({a}, ">50", {b})',
    "sumifs_row_wildcard": 'SUMIFS({b}, {a}, {a}, {name}, "*ace*")',
}


def best_rate(
    run: Callable[[], object],
    rows: int,
    repeat: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Evaluations per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        run()
        best = min(best, clock() - start)
    return rows / best


async def open_store(path: Path, hooks: bool) -> TenantStore:
    """A tenant store on ``path``, with the hub's formula hooks or without."""

    def on_commit(tenant: str, table: str, changes: list[Change]) -> None:
        pass

    runtime = FormulaRuntime()
    return await TenantStore.open(
        "benchformula01",
        path,
        durability=Durability.PROCESS,
        on_commit=on_commit,
        check_formula=runtime.check if hooks else None,
        recompute=runtime.recompute if hooks else None,
    )


async def set_formula_rate(root: Path, rows: int) -> float:
    """Rows per second of one full recompute pass (add a formula column), ack to ack."""
    store = await open_store(root / "setformula.db", hooks=True)
    try:
        cols = [
            ColumnDef(id="a", name="a", type=ColumnType.NUMBER),
            ColumnDef(id="b", name="b", type=ColumnType.NUMBER),
        ]
        await store.apply("t", "c", "create", [CreateTable(name="T", columns=cols)], "b")
        for start in range(0, rows, 1000):
            batch = [
                NewRow(id=f"r{i}", values={"a": i % 100, "b": i % 7})
                for i in range(start, min(rows, start + 1000))
            ]
            out = await store.apply("t", "c", f"i{start}", [InsertRows(rows=batch)], "b")
            assert out.error is None, out.error
        column = ColumnDef(id="f", name="f", type=ColumnType.FORMULA, formula=SIMPLE)
        began = time.perf_counter()
        out = await store.apply("t", "c", "formula", [AddColumn(column=column)], "b")
        elapsed = time.perf_counter() - began
        assert out.error is None and out.change is not None, out.error
        assert len(out.change.ops) == rows + 1
        return rows / elapsed
    finally:
        await store.close()


async def edit_rate(path: Path, hooks: bool, total: int, producers: int = 64) -> float:
    """Acked single-op batches per second on a table without formulas."""
    store = await open_store(path, hooks)
    try:
        cols = [
            ColumnDef(id="name", name="name", type=ColumnType.TEXT),
            ColumnDef(id="n", name="n", type=ColumnType.NUMBER),
        ]
        await store.apply("t", "c", "create", [CreateTable(name="T", columns=cols)], "b")
        seed = [NewRow(id=f"r{i}", values={"name": f"s{i}", "n": i}) for i in range(1000)]
        await store.apply("t", "c", "seed", [InsertRows(rows=seed)], "b")
        counter = 0

        async def producer(index: int) -> None:
            nonlocal counter
            rng = random.Random(index)
            while counter < total:
                i = counter
                counter += 1
                op: Op
                if i % 4 == 0:
                    op = InsertRows(rows=[NewRow(id=f"n{i}", values={"name": "x", "n": i})])
                else:
                    op = UpdateCells(row=f"r{rng.randrange(1000)}", values={"n": i})
                out = await store.apply("t", "p", f"o{i}", [op], "b")
                assert out.error is None, out.error

        began = time.perf_counter()
        await asyncio.gather(*(producer(k) for k in range(producers)))
        return total / (time.perf_counter() - began)
    finally:
        await store.close()


async def store_figures(rows: int, edits: int) -> dict[str, object]:
    """The ``--store`` JSON line."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures: dict[str, Any] = {"bench": "formula_store", "rows": rows, "edits": edits}
        figures["set_formula_rows_per_s"] = round(await set_formula_rate(root, rows))
        best = {True: 0.0, False: 0.0}
        for round_ in range(3):
            for hooks in (False, True):
                path = root / f"edits-{round_}-{hooks}.db"
                best[hooks] = max(best[hooks], await edit_rate(path, hooks, edits))
        figures["edit_ops_per_s_plain"] = round(best[False])
        figures["edit_ops_per_s_hooks"] = round(best[True])
        figures["hooks_ratio"] = round(best[True] / best[False], 3)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--store", action="store_true", help="also measure through a store")
    parser.add_argument("--edits", type=int, default=20_000, help="hot-path ops per round")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the pure engine in process CPU time (steadier on a shared machine)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best counts)")
    parser.add_argument(
        "--code",
        metavar="DIR",
        help="measure the engine of another checkout (before/after comparisons); "
        "figures of functions it lacks are left out",
    )
    args = parser.parse_args()
    if args.store:
        print(json.dumps(asyncio.run(store_figures(args.rows, args.edits))))
        return
    rng = random.Random(42)
    ids = {"a": "c_a", "b": "c_b", "name": "c_name"}
    table: list[dict[str, CellValue]] = [
        {
            "c_a": rng.randint(0, 100),
            "c_b": None if rng.random() < 0.05 else round(rng.uniform(0, 1000), 2),
            "c_name": rng.choice(["  Ada Lovelace ", "Grace  Hopper", "alan turing"]),
        }
        for _ in range(args.rows)
    ]
    columns = {cid: [row[cid] for row in table] for cid in ids.values()}
    functions = FunctionRegistry.from_definitions(["MARGIN(price, cost) = (price - cost) / price"])

    start = time.perf_counter()
    formulas = {
        name: compile_formula(text, columns=ids)
        for name, text in [
            ("simple", SIMPLE),
            ("heavy", HEAVY),
            ("aggregate", AGGREGATE),
            ("custom", CUSTOM),
        ]
    }
    compile_us = (time.perf_counter() - start) / len(formulas) * 1e6
    formulas.update(
        {
            name: compile_formula(text, columns=ids)
            for name, text in SPREADSHEET.items()
            if all(f in BUILTINS for f in ("SEARCH", "COUNTIF", "SUMIF", "SUMIFS"))
        }
    )
    clock = time.process_time if args.cpu_time else time.perf_counter

    figures: dict[str, object] = {
        "bench": "formula",
        "rows": args.rows,
        "clock": "cpu" if args.cpu_time else "wall",
    }
    for name, formula in formulas.items():

        def run(formula: Formula = formula) -> object:
            # A fresh context per pass, as the table layer would make per recompute.
            ctx = EvalContext(columns=columns, functions=functions)
            return formula.evaluate_rows(table, ctx)

        figures[f"{name}_evals_per_s"] = round(best_rate(run, args.rows, args.repeat, clock))
    figures["compile_us_per_formula"] = round(compile_us, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
