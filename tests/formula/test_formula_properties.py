"""Property-based: random text, mutated valid formulas and generated expressions never make
the engine raise (other than FormulaSyntaxError at compile) nor exceed its step budget.

Besides the public contract (``evaluate`` returns a value), the compiled closure is also run
directly to check that internally only the two evaluator signals are ever raised: the
catch-all in ``evaluate`` must stay a safety net, not a hiding place for bugs.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.formula import (
    BUILTINS,
    LIMIT,
    CellValue,
    ErrorValue,
    EvalContext,
    Formula,
    FormulaSyntaxError,
    FunctionRegistry,
    Limits,
    compile_formula,
)
from server.formula.errors import Abort, Signal

LIMITS = Limits(max_steps=2_000, max_text_length=2_000, max_call_depth=12, max_nodes=400)
COLUMNS = {"a": "c_a", "b": "c_b", "Name": "c_n", "When": "c_w", "Flag": "c_f"}
REGISTRY = FunctionRegistry.from_definitions(
    [
        "MARGIN(p, c) = (p - c) / p",
        "DOUBLE(s, n) = IF(n <= 0, s, DOUBLE(s & s, n - 1))",
        "LOOP(n) = LOOP(n + 1) + 1",
        "FIB(n) = IF(n < 2, n, FIB(n - 1) + FIB(n - 2))",
        'PING(x) = PONG(x & "i")',
        'PONG(x) = PING(x & "o")',
    ],
    LIMITS,
)
SEEDS = [
    "{a} * {b} + 1",
    'IF({a} > 50, UPPER(LEFT({Name}, 3)) & "-" & TEXT(ROUND({a} * {b} / 7, 2), "0.00"), "x")',
    "SUM({a}) / COUNT({b}) ^ 2",
    'XLOOKUP({Name}, {Name}, {a}, "none")',
    'DATEDIF({When}, EDATE({When}, {b}), "M")',
    'IFERROR(MARGIN({a}, {b}), -1) & REPT("ab", {a})',
    'SWITCH({a}, 1, "one", 2, "two", "many") & DOUBLE("x", {b})',
    'FIB({b}) + LEN(PING("")) + LOOP(1)',
    '-{a}^2 <> ({b} & "") = TRUE',
    'SUBSTITUTE(TRIM({Name}), " ", "") & TEXT({When}, "yyyy-mm-dd hh:mm")',
    'SUMIFS({a}, {Name}, "a*?~*", {b}, ">=" & {b}) + COUNTIF({Name}, {Name}) + 50%',
    'SEARCH("*a?b*", {Name}) + MATCH({Name} & "*", {Name}, 0) + VLOOKUP({a}, {b}, {a})',
    "XLOOKUP({a}, {b}, {Name}, #N/A, -1, -1) & RANK({a}, {a}) & MEDIAN({a}, {b})",
    "WORKDAY({When}, {a}, {When}) & NETWORKDAYS({When}, {When} + {b})",
    'DATEDIF({When}, "2030-01-01", "MD") & DATEDIF({When}, {When} + {a}, "YD")',
    "SUMPRODUCT({a}, {b}) / STDEV({a}) + MODE({b}) + LARGE({a}, 2) + CHOOSE({b}, 1, 2)",
    "IFERROR(ERROR.TYPE(#DIV/0!), 0) + CEILING({a}, -{b}) + MROUND({a}, {b}) + DATEVALUE({When})",
]
cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["2024-02-29", "2024-03-31T12:00:00", "1e308", "50%", " 7 ", "*a?", "~"]),
    st.sampled_from(["$1,000", "(5)", "12%", "2024-01-01 10:00:00"]),
    st.sampled_from([ErrorValue("#DIV/0!"), ErrorValue("#N/A")]),
)
rows = st.fixed_dictionaries({cid: cells for cid in COLUMNS.values()})
TOKENS = [
    "(",
    ")",
    ",",
    "{a}",
    "{b}",
    "{Name}",
    "{zz}",
    '"',
    '""',
    "{",
    "}",
    "+",
    "-",
    "*",
    "/",
    "^",
    "&",
    "=",
    "<>",
    "<=",
    " ",
    "1",
    "9",
    "0",
    "1e308",
    ".",
    "TRUE",
    "__import__",
    "IF(",
    "SUM(",
    "REPT(",
    "DOUBLE(",
    "LOOP(",
    "FIB(",
    "9^9^9",
    "10^9",
    "1/0",
    "%",
    "#N/A",
    "#DIV/0!",
    '"*"',
    '"?*~"',
    "~",
    "SUMIF(",
    "COUNTIFS(",
    "SEARCH(",
    "{When}",
    "1e308",
]


def check(text: str, row: dict[str, CellValue], column_values: list[CellValue]) -> None:
    try:
        formula = compile_formula(text, columns=COLUMNS, limits=LIMITS)
    except FormulaSyntaxError:
        return
    columns = {cid: [row[cid], *column_values] for cid in COLUMNS.values()}
    now = datetime(2024, 5, 17, 9, 30)
    ctx = EvalContext(columns=columns, functions=REGISTRY, now=now)
    value = formula.evaluate(row, ctx)
    assert value is None or type(value) in (bool, int, float, str, ErrorValue)
    assert ctx.steps <= LIMITS.max_steps or value == LIMIT
    if isinstance(value, str):
        assert len(value) <= LIMITS.max_text_length
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert -LIMITS.max_number <= value <= LIMITS.max_number
    _internals_raise_only_signals(formula, row, ctx)


def _internals_raise_only_signals(
    formula: Formula, row: dict[str, CellValue], ctx: EvalContext
) -> None:
    ctx.steps, ctx.depth, ctx.eval_depth, ctx.limits = formula.cost, 0, formula.height, LIMITS
    with contextlib.suppress(Signal, Abort):
        formula._fn(row, ctx)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=80), row=rows, more=st.lists(cells, max_size=4))
def test_random_text(text: str, row: dict[str, CellValue], more: list[CellValue]) -> None:
    check(text, row, more)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(st.integers(0, 500), st.integers(0, 3), st.sampled_from(TOKENS)), max_size=6
    ),
    row=rows,
    more=st.lists(cells, max_size=4),
)
def test_mutated_valid_formulas(
    seed: str,
    edits: list[tuple[int, int, str]],
    row: dict[str, CellValue],
    more: list[CellValue],
) -> None:
    text = seed
    for at, remove, token in edits:
        at %= len(text) + 1
        text = text[:at] + token + text[at + remove :]
    check(text, row, more)


NAMES = [*sorted(BUILTINS), "MARGIN", "DOUBLE", "LOOP", "FIB", "PING", "NOPE", "__import__"]
atoms = st.one_of(
    st.sampled_from(["{a}", "{b}", "{Name}", "{When}", "{Flag}", "{zz}", "TRUE", "x"]),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["0", "0.5", "1e300", "9", '""', '"abc"', '"2024-01-31"', '"0.00"']),
    st.sampled_from(['"a*b?"', '"~*"', '">=5"', '"<>"', "#N/A", "50%", '"$1,000"', "45292"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from([*list("+-*/^&=<>"), "<>", "<=", ">="]), children)
    call = st.tuples(st.sampled_from(NAMES), st.lists(children, max_size=4))
    return st.one_of(
        binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda c: f"-{c}"),
        call.map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.recursive(atoms, _combine, max_leaves=25), row=rows, more=st.lists(cells, max_size=4)
)
def test_generated_expressions(text: str, row: dict[str, CellValue], more: list[CellValue]) -> None:
    check(text, row, more)
