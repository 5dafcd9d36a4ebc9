"""The query compiler alone (pure: no event loop, no database): what reaches SQL text, the
bounds, the type rules and the cursors."""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec
import pytest

from protocol.limits import MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_FILTER_VALUES
from protocol.ops import ColumnType
from protocol.query import (
    And,
    Contains,
    Eq,
    Filter,
    Gt,
    In,
    IsNull,
    Not,
    Or,
    OrderBy,
    StartsWith,
    filter_problem,
)
from server.engine.catalog import ColumnState, TableState
from server.store.query import QueryError, QueryPlan, encode_cursor, instant, plan_query

HOSTILE = "x'); DROP TABLE t_1; --"
TABLE = TableState(
    "people",
    "People",
    "t_1",
    3,
    (
        ColumnState("name", HOSTILE, ColumnType.TEXT, "c_2"),
        ColumnState("age", "Age", ColumnType.NUMBER, "c_3"),
        ColumnState("ok", "OK", ColumnType.BOOLEAN, "c_4"),
        ColumnState("when", "When", ColumnType.DATETIME, "c_5"),
        ColumnState("data", "Data", ColumnType.JSON, "c_6"),
        ColumnState("score", "Score", ColumnType.FORMULA, "c_7", formula="{Age} * 2"),
    ),
)

# Every word the compiler may write: keywords, generated names, its two functions.
SQL_WORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "IS", "NOT", "NULL", "IN", "ORDER", "BY", "ASC",
    "DESC", "NULLS", "LAST", "LIMIT", "typeof", "instr", "substr", "ht_fold", "ht_instant",
    "_id", "_ord", "integer", "real", "text", "CASE", "WHEN", "THEN", "ELSE", "END", "length",
    "CAST", "AS", "BLOB", "LIKE", "ESCAPE",
}  # fmt: skip


def plan(where: Filter | None = None, **kw: Any) -> QueryPlan:
    args: dict[str, Any] = {"order_by": [], "columns": None, "after": None, "limit": 10}
    return plan_query(TABLE, where=where, **{**args, **kw})


def refusal(where: Filter | None = None, **kw: Any) -> tuple[str, str]:
    with pytest.raises(QueryError) as info:
        plan(where, **kw)
    return info.value.code, info.value.message


def test_no_name_or_value_reaches_sql_text() -> None:
    where = And(
        args=[
            Eq(column=HOSTILE, value=HOSTILE),
            Or(args=[Contains(column="name", value="%' OR 1=1 --"), Gt(column="Score", value=1)]),
            Not(arg=In(column="_id", values=["'; DELETE FROM _ht_oplog; --", "r1"])),
            StartsWith(column=HOSTILE, value='"; ATTACH'),
        ]
    )
    compiled = plan(where, order_by=[OrderBy(column=HOSTILE, desc=True)], columns=[HOSTILE])
    # Only numbered parameters, fixed words and generated names: no quotes, no user text.
    words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", compiled.sql))
    generated = {w for w in words if re.fullmatch(r"[tc]_\d+", w)}
    assert words - generated <= SQL_WORDS
    fixed = ("'text'", "'integer', 'real'", "ESCAPE '\\'")
    assert "'" not in functools.reduce(lambda sql, word: sql.replace(word, ""), fixed, compiled.sql)
    assert '"' not in compiled.sql and "--" not in compiled.sql and ";" not in compiled.sql
    assert HOSTILE in compiled.params and "'; DELETE FROM _ht_oplog; --" in compiled.params
    assert "%\\%' or 1=1 --%" in compiled.params  # case-folded, escaped, bound


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        (And(args=[IsNull(column="age")] * MAX_FILTER_NODES), "conditions"),
        (Or(args=[In(column="age", values=[1] * (MAX_FILTER_VALUES // 2))] * 3), "values"),
    ],
)
def test_filters_over_the_tree_bounds_are_refused(where: Filter, problem: str) -> None:
    assert problem in (filter_problem(where) or "")
    assert refusal(where)[0] == "invalid_filter"


def test_depth_bound() -> None:
    node: Filter = IsNull(column="age")
    for _ in range(MAX_FILTER_DEPTH - 1):
        node = Not(arg=node)
    assert filter_problem(node) is None
    assert "deeper" in (filter_problem(Not(arg=node)) or "")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("age", "36"),
        ("age", True),  # a boolean is not a number
        ("name", 3),
        ("ok", 1),  # a number is not a boolean
        ("when", "yesterday"),
        ("when", 1700000000),
        ("data", "x"),
        ("_id", 5),
        ("name", None),
    ],
)
def test_values_of_the_wrong_kind_are_refused(column: str, value: Any) -> None:
    assert refusal(Eq(column=column, value=value))[0] == "invalid_filter"


@pytest.mark.parametrize(
    ("column", "value", "bound"),
    [
        ("age", 2.5, 2.5),
        ("ok", True, 1),
        ("when", "2024-01-01T01:00:00+01:00", instant("2024-01-01T00:00:00")),
        ("score", True, "TRUE"),
        ("score", 3, 3),
        ("score", "#DIV/0!", "#DIV/0!"),
        ("Age", 1, 1),  # by name
    ],
)
def test_values_are_bound_in_their_stored_form(column: str, value: Any, bound: Any) -> None:
    assert plan(Eq(column=column, value=value)).params[0] == bound


def test_text_matching_and_sorting_refuse_columns_without_text_or_order() -> None:
    assert refusal(Contains(column="age", value="3"))[0] == "invalid_filter"
    assert refusal(StartsWith(column="when", value="2024"))[0] == "invalid_filter"
    assert refusal(order_by=[OrderBy(column="data")])[0] == "invalid_filter"
    assert refusal(IsNull(column="nope"))[0] == "unknown_column"
    assert refusal(columns=["age", "nope"])[0] == "unknown_column"


def test_id_match_wins_over_name_and_underscore_id_is_the_row_id() -> None:
    table = TableState(
        "t",
        "T",
        "t_9",
        1,
        (
            ColumnState("a", "b", ColumnType.NUMBER, "c_1"),
            ColumnState("b", "_id", ColumnType.TEXT, "c_2"),
        ),
    )
    compiled = plan_query(
        table, where=Eq(column="b", value="x"), order_by=[], columns=None, after=None, limit=1
    )
    assert "c_2 = ?1" in compiled.sql  # "b" is column b's id (column a is *named* b)
    compiled = plan_query(
        table, where=Eq(column="_id", value="x"), order_by=[], columns=None, after=None, limit=1
    )
    assert "_id = ?1" in compiled.sql


def test_a_cursor_only_continues_its_own_query() -> None:
    by_age = plan(Gt(column="age", value=1), order_by=[OrderBy(column="age")])
    cursor = by_age.cursor(["r7", "V0000007", "Ada", 36, None, None, None, None, 36])
    resumed = plan(Gt(column="Age", value=1), order_by=[OrderBy(column="Age")], after=cursor)
    assert resumed.params[1:4] == [36, "V0000007", "r7"]  # by name: the same query
    for other in (
        {"where": Gt(column="age", value=2), "order_by": [OrderBy(column="age")]},
        {"where": Gt(column="age", value=1), "order_by": [OrderBy(column="age", desc=True)]},
        {"where": None, "order_by": [OrderBy(column="age")]},
    ):
        assert refusal(after=cursor, **other)[0] == "invalid_cursor"
    for forged in (
        cursor[:-4],
        cursor + "A",
        "q1.!!!",
        "q1." + "A" * 40,
        encode_cursor(by_age.shape, [1, 2]),  # right shape, wrong key length
    ):
        assert (
            refusal(Gt(column="age", value=1), order_by=[OrderBy(column="age")], after=forged)[0]
            == "invalid_cursor"
        )
    # the bare order key of earlier servers continues an unsorted query only
    assert plan(after="V0000007").params == ["V0000007", 10]
    assert refusal(order_by=[OrderBy(column="age")], after="V0000007")[0] == "invalid_cursor"


def test_cursors_survive_a_json_round_trip_as_plain_text() -> None:
    compiled = plan(order_by=[OrderBy(column="when")])
    cursor = compiled.cursor(["r1", "V1", "a", 1, 1, "2024-01-01", None, 2, instant("2024-01-01")])
    assert re.fullmatch(r"q1\.[A-Za-z0-9_-]+", cursor)
    assert msgspec.json.decode(msgspec.json.encode(cursor)) == cursor
