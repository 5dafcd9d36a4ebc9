"""Filtered, sorted, paged queries on a real tenant store return exactly what a plain
Python filter and sort over the table's snapshot return (tests/query/query_oracle.py).

Random tables hold every column type (a formula column mixing numbers, text and error
values among them) with nulls; random filters use every operator, by column id and by name;
random sorts mix directions; results are read page by page with random page sizes, so the
cursors are exercised too.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_oracle import matches, ordered

from protocol.messages import Change, Query
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, Row
from protocol.query import (
    And,
    Contains,
    Eq,
    Filter,
    Ge,
    Gt,
    In,
    IsNull,
    Le,
    Lt,
    Ne,
    Not,
    Or,
    OrderBy,
    StartsWith,
)
from server.store.formulas import FormulaRuntime
from server.store.schema import Durability
from server.store.tenant import TenantStore

COLUMNS = [
    ColumnDef(id="t", name="Name", type=ColumnType.TEXT),
    ColumnDef(id="n", name="Count", type=ColumnType.NUMBER),
    ColumnDef(id="b", name="Done", type=ColumnType.BOOLEAN),
    ColumnDef(id="d", name="When", type=ColumnType.DATETIME),
    ColumnDef(id="j", name="Data", type=ColumnType.JSON),
    # numbers, the text "low", and "#DIV/0!" (for negative counts): a mixed-type column
    ColumnDef(
        id="f",
        name="Score",
        type=ColumnType.FORMULA,
        formula='IF({Count} > 2, {Count} * 2, IF({Count} < 0, 1 / 0, "low"))',
    ),
]
BY_ID = {c.id: c for c in COLUMNS}

TEXTS = [
    "",
    "a",
    "A",
    "ab",
    "Ab",
    "b",
    "é",
    "É",
    "straße",
    "STRASSE",
    "%",
    "_",
    "it's",
    "a%b",
    "a\x00b",
    "\\",
]
NUMBERS = [-3, -1, 0, 0.5, 1, 2, 2.0, 3, 7.25, 10]
DATETIMES = [
    "2024-01-01",
    "2024-01-01T00:00:00",
    "2024-01-01T01:00:00+01:00",  # the same instant as the two above
    "2024-01-01T12:30:00",
    "2024-06-30T23:59:59.5+02:00",
    "2023-12-31T23:00:00-05:00",
]

cell_values: dict[str, st.SearchStrategy[Any]] = {
    "t": st.sampled_from(TEXTS),
    "n": st.sampled_from(NUMBERS),
    "b": st.booleans(),
    "d": st.sampled_from(DATETIMES),
    "j": st.sampled_from([{"a": 1}, [1, 2], "x", 3]),
}

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {},
        optional={cid: values for cid, values in cell_values.items()},
    ),
    min_size=4,
    max_size=30,
)


def _ref(cid: str) -> st.SearchStrategy[str]:
    return st.sampled_from([cid, BY_ID[cid].name])


def _value_for(cid: str) -> st.SearchStrategy[Any]:
    if cid == "f":
        return st.one_of(
            st.sampled_from(NUMBERS), st.sampled_from(["low", "#DIV/0!", "m"]), st.booleans()
        )
    if cid == "_id":
        return st.sampled_from(["r0", "r1", "r5", "r9", "s"])
    return cell_values[cid]


COMPARES = [Eq, Ne, Lt, Le, Gt, Ge]
COMPARABLE = ["t", "n", "b", "d", "f", "f", "_id"]  # the mixed-type column twice as often
TEXTUAL = ["t", "f", "_id"]


def _refs(cids: list[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(column id, how the filter names it): by id or by name, ``_id`` as itself."""
    return st.sampled_from(cids).flatmap(
        lambda cid: st.tuples(st.just(cid), st.just(cid) if cid == "_id" else _ref(cid))
    )


def _compares(op: type[Filter]) -> st.SearchStrategy[Filter]:
    return _refs(COMPARABLE).flatmap(
        lambda pair: _value_for(pair[0]).map(lambda v: op(column=pair[1], value=v))
    )


def _ins() -> st.SearchStrategy[Filter]:
    return _refs(COMPARABLE).flatmap(
        lambda pair: st.lists(_value_for(pair[0]), max_size=4).map(
            lambda vs: In(column=pair[1], values=vs)
        )
    )


def _matches(op: type[Filter]) -> st.SearchStrategy[Filter]:
    texts = st.sampled_from(
        ["", "a", "B", "ß", "ss", "É", "%", "_", "'", "lo", "#", "r1", "\\", "b"]
    )
    return st.builds(lambda pair, text: op(column=pair[1], value=text), _refs(TEXTUAL), texts)


leaves: st.SearchStrategy[Filter] = st.one_of(
    *[_compares(op) for op in COMPARES],
    _refs([*COMPARABLE, "j"]).map(lambda pair: IsNull(column=pair[1])),
    _ins(),
    _matches(Contains),
    _matches(StartsWith),
)


filters = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(And, args=st.lists(inner, min_size=1, max_size=3)),
        st.builds(Or, args=st.lists(inner, min_size=1, max_size=3)),
        st.builds(Not, arg=inner),
    ),
    max_leaves=8,
)

sorts = st.lists(
    st.builds(
        OrderBy,
        column=st.sampled_from(["t", "n", "b", "d", "f", "_id", "Score"]),
        desc=st.booleans(),
    ),
    max_size=3,
)


class _Fixture:
    """One store for every example (a real SQLite file), and a fresh table per example."""

    def __init__(self, runner: asyncio.Runner, path: Path) -> None:
        self.runner = runner
        self.path = path
        self.tables = itertools.count()
        self.store: TenantStore | None = None

    async def open(self) -> None:
        runtime = FormulaRuntime()

        def on_commit(tenant: str, table: str, changes: list[Change]) -> None:
            pass

        self.store = await TenantStore.open(
            "querytenant01",
            self.path,
            durability=Durability.PROCESS,
            on_commit=on_commit,
            check_formula=runtime.check,
            recompute=runtime.recompute,
        )

    async def table_with(self, rows: list[dict[str, Any]]) -> tuple[str, list[Row]]:
        assert self.store is not None
        table = f"t{next(self.tables)}"
        ops: list[Any] = [CreateTable(name=table, columns=COLUMNS)]
        if rows:
            new = [NewRow(id=f"r{i}", values=values) for i, values in enumerate(rows)]
            ops.append(InsertRows(rows=new))
        outcome = await self.store.apply(table, "client", "op", ops, "tester")
        assert outcome.error is None, outcome.error
        snap = await self.store.snapshot(table)
        assert snap is not None
        return table, snap.rows

    async def read_all(
        self,
        table: str,
        where: Filter | None,
        order: list[OrderBy],
        columns: list[str] | None,
        size: int,
    ) -> list[Row]:
        assert self.store is not None
        out: list[Row] = []
        after = None
        for _ in range(100):
            request = Query(
                id=1,
                table=table,
                where=where,
                order_by=order,
                columns=columns,
                after=after,
                limit=size,
            )
            page = await self.store.query(table, request)
            assert page is not None
            out.extend(page.rows)
            if not page.more:
                return out
            after = page.cursor_after(len(page.rows))
        raise AssertionError("paging did not end")


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with asyncio.Runner() as runner:
        state = _Fixture(runner, tmp_path_factory.mktemp("query") / "t.db")
        runner.run(state.open())
        yield state
        assert state.store is not None
        runner.run(state.store.close())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows_strategy,
    cases=st.lists(
        st.tuples(
            st.none() | filters,
            sorts,
            st.none() | st.lists(st.sampled_from([*BY_ID, "Name", "Score", "_id"]), max_size=3),
            st.integers(min_value=1, max_value=7),
        ),
        min_size=3,
        max_size=8,
    ),
)
def test_query_equals_python_filter_over_snapshot(fixture: _Fixture, rows: Any, cases: Any) -> None:
    table, snapshot = fixture.runner.run(fixture.table_with(rows))
    for where, order, columns, size in cases:
        expected = ordered(
            [r for r in snapshot if where is None or matches(where, r, COLUMNS)], order, COLUMNS
        )
        if columns is not None:
            keep = {c.id for c in COLUMNS if c.id in columns or c.name in columns}
            expected = [
                Row(id=r.id, order=r.order, values={k: v for k, v in r.values.items() if k in keep})
                for r in expected
            ]
        got = fixture.runner.run(fixture.read_all(table, where, order, columns, size))
        assert [r.id for r in got] == [r.id for r in expected], (where, order)
        assert got == expected  # the same cells too
