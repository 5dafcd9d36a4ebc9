"""Hostile formulas end as error values (or authoring errors) within their budgets.

No timing assertions: speed is measured in bench/formula.py. What is asserted is the
outcome, and that the work was bounded (step counters, no stack overflow, no big values).
"""

from __future__ import annotations

import pytest

from server.formula import (
    LIMIT,
    NAME,
    NUM,
    REF,
    VALUE,
    CellValue,
    ErrorValue,
    EvalContext,
    FormulaSyntaxError,
    FunctionRegistry,
    Limits,
    compile_formula,
)

LONG = Limits(max_formula_length=1_000_000)


def ev(text: str, registry: FunctionRegistry | None = None) -> CellValue:
    ctx = EvalContext(functions=registry)
    value = compile_formula(text, columns={"a": "c_a"}).evaluate({"c_a": 1}, ctx)
    assert ctx.steps <= ctx.limits.max_steps or value == LIMIT
    return value


def test_power_towers_are_refused_before_computing() -> None:
    # Beyond a double: #NUM!, as a spreadsheet's overflow, decided from logarithms before
    # any digit is computed.
    assert ev("9^(9^9)") == NUM
    assert ev("9^9^9^9") == NUM  # ((9^9)^9)^9 ~ 1e696
    assert ev("POWER(10, 10^6)") == NUM
    assert ev("(-9)^(9^9)") == NUM
    assert isinstance(ev("9^9^9"), float)  # (9^9)^9 ~ 1.97e77, as in Excel
    assert ev("10^308") == 1e308  # a valid double is computed


def test_a_lower_configured_number_bound_is_limit() -> None:
    small = Limits(max_number=1e100)
    assert compile_formula("10^101", limits=small).evaluate({}) == LIMIT
    assert compile_formula("1e60 * 1e60", limits=small).evaluate({}) == LIMIT
    assert compile_formula("10^99", limits=small).evaluate({}) == 1e99


def test_products_and_sums_beyond_a_double_are_num() -> None:
    assert ev("1e200 * 1e200") == NUM
    assert ev("1e308 + 1e308") == NUM
    assert ev("EXP(10^6)") == NUM
    assert ev("ROUND(1, 10^9)") == 1 or ev("ROUND(1, 10^9)") == ErrorValue("#VALUE!")


def test_text_repetition_is_refused_before_building() -> None:
    assert ev('REPT("x", 10^9)') == LIMIT
    assert ev('REPT("abc", 1e300)') == LIMIT
    assert ev('LEN(REPT("x", 32767))') == 32767
    assert ev('REPT("x", 32767) & "y"') == LIMIT
    assert ev('SUBSTITUTE(REPT("a", 30000), "a", "aaaa")') == LIMIT
    assert ev('CONCAT(REPT("a", 20000), REPT("b", 20000))') == LIMIT
    assert ev('LEFT("abc", 10^300)') == "abc"


def test_text_doubling_in_custom_recursion_hits_the_text_limit() -> None:
    reg = FunctionRegistry.from_definitions(["DOUBLE(s, n) = IF(n = 0, s, DOUBLE(s & s, n - 1))"])
    assert ev('LEN(DOUBLE("x", 10))', reg) == 1024
    assert ev('DOUBLE("x", 100)', reg) == LIMIT


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deep_parentheses_fail_early_at_parse(depth: int) -> None:
    text = "(" * depth + "1" + ")" * depth
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula(text, limits=LONG)  # the depth check, not the length check
    with pytest.raises(FormulaSyntaxError):
        compile_formula(text)


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deep_function_nesting_fails_early_at_parse(depth: int) -> None:
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula("ABS(" * depth + "1" + ")" * depth, limits=LONG)
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula("IF(TRUE, " * depth + "1" + ")" * depth, limits=LONG)
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula("-" * depth + "1", limits=LONG)


def test_long_operator_chains_are_bounded() -> None:
    with pytest.raises(FormulaSyntaxError):
        compile_formula("+".join(["1"] * 5000))  # tall left-leaning tree
    with pytest.raises(FormulaSyntaxError, match="longer than"):
        compile_formula("1" + "+1" * 10_000)
    assert compile_formula("+".join(["1"] * 60)).evaluate({}) == 60


def test_100k_step_loops_through_custom_functions_end_as_limit() -> None:
    reg = FunctionRegistry.from_definitions(
        [
            "COUNTDOWN(n) = IF(n <= 0, 0, 1 + COUNTDOWN(n - 1))",
            "WIDE(n) = IF(n <= 0, 1, WIDE(n - 1) + WIDE(n - 1) + WIDE(n - 1))",
            "BUSY(n) = IF(n <= 0, 0, BUSY(n - 1) + BUSY(n - 1))",
        ]
    )
    assert ev("COUNTDOWN(100000)", reg) == LIMIT  # call depth
    assert ev("WIDE(20)", reg) == LIMIT  # steps
    assert ev("BUSY(17)", reg) == LIMIT  # 2**17 calls
    assert ev("IFERROR(BUSY(17), 0)", reg) == LIMIT
    assert ev("COUNTDOWN(10)", reg) == 10


@pytest.mark.parametrize(
    "text",
    [
        '__import__("os")',
        '__import__("os").system("true")',
        'eval("1")',
        'exec("1")',
        'open("x")',
        'compile("1", "", "eval")',
        'getattr(1, "real")',
        "globals()",
        "locals()",
        "vars()",
        "breakpoint()",
        "print(1)",
        "input()",
        "__builtins__",
        "__class__",
        "os",
        "self",
        "SUM.__class__",
        "type(1)",
        "lambda(1)",
        "setattr(1, 2, 3)",
    ],
)
def test_python_names_reach_nothing(text: str) -> None:
    try:
        value = ev(text)
    except FormulaSyntaxError:
        return  # refused at authoring, also fine
    assert value == NAME


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{__class__}", REF),
        ("{__globals__} + 1", REF),
        ('"{0.__class__}"', "{0.__class__}"),
        ('"{0.__class__.__mro__}" & {a}', "{0.__class__.__mro__}1"),
        ('TEXT(1, "{0.__class__}")', "{0.__cla00__}"),  # date letters: serial 1, "ss" = 00
        ('TEXT(1, "{0}%r{}")', "{100}%r{}"),
        ('TEXT(2, "0{!r}")', "2{!r}"),
        ('SUBSTITUTE("{a}", "{", "{0.__init__")', "{0.__init__a}"),
        ('UPPER("__import__")', "__IMPORT__"),
    ],
)
def test_format_string_tricks_are_plain_text(text: str, expected: CellValue) -> None:
    value = ev(text)
    assert value == expected


@pytest.mark.parametrize("text", ["1 .real", "1..real", "(1).real", "{a}.real", "SUM.x"])
def test_attribute_syntax_does_not_exist(text: str) -> None:
    try:
        value = ev(text)
    except FormulaSyntaxError:
        return
    assert isinstance(value, ErrorValue)


def test_hostile_values_in_cells_are_inert() -> None:
    f = compile_formula("{x} & UPPER({x}) & LEN({x})")
    value = f.evaluate({"x": "{0.__class__}__import__('os')"})
    assert value == "{0.__class__}__import__('os'){0.__CLASS__}__IMPORT__('OS')29"


def test_wildcards_cannot_backtrack() -> None:
    # A backtracking regex would take exponential time on these; the matcher reads the text
    # once per segment, and a pattern too wide for the text is refused before matching.
    text = 'REPT("a", 30000)'
    assert ev(f'SEARCH("*a*a*a*a*a*a*a*a*a*b", {text})') == VALUE
    assert ev(f'SEARCH("a?a?a?a?a?a?a?a?b", {text})') == VALUE
    assert ev(f'SEARCH(REPT("a?", 15000) & "b", {text})') == LIMIT  # ~900k steps: refused
    assert ev('SEARCH("*b", REPT("a", 30000) & "b")') == 1
    big = [("a" * 5000) + str(i) for i in range(200)]
    ctx = EvalContext(columns={"c_a": big})
    f = compile_formula('COUNTIF({a}, "*a*a*a*a*a*a*a*a*9")', columns={"a": "c_a"})
    assert f.evaluate({}, ctx) == 20  # names ending in 9 among 0..199
    assert ctx.scanned < ctx.limits.max_scan_cells


def test_distinct_criteria_in_every_row_stop_at_the_scan_budget() -> None:
    # SUMIF with a different criterion per row is a scan per row: quadratic over a table.
    # The context's scan budget ends it as #LIMIT! instead of running for hours.
    limits = Limits(max_scan_cells=50_000)
    column = list(range(5_000))
    f = compile_formula('SUMIF({a}, ">" & {a}, {a})', columns={"a": "c_a"}, limits=limits)
    ctx = EvalContext(columns={"c_a": column})
    values = f.evaluate_rows([{"c_a": v} for v in column[:100]], ctx)
    assert values[0] == sum(column) - 0  # everything above 0
    assert values[-1] == LIMIT
    assert values.count(LIMIT) > 80  # ~10 scans of 5,000 cells fit the budget
    assert ctx.scanned <= limits.max_scan_cells + len(column)
    # An equality criterion per row is answered from one grouping of the column.
    g = compile_formula("COUNTIF({a}, {a})", columns={"a": "c_a"}, limits=limits)
    ctx = EvalContext(columns={"c_a": column})
    assert g.evaluate_rows([{"c_a": v} for v in column], ctx) == [1] * len(column)
    assert ctx.scanned == len(column)


def test_whole_column_statistics_are_computed_once_per_context() -> None:
    column: list[CellValue] = [float(i % 97) for i in range(100_000)]
    ctx = EvalContext(columns={"c_a": column})
    f = compile_formula(
        "RANK({a}, {a}) + MEDIAN({a}) + STDEV({a}) + LARGE({a}, 3) + SUMPRODUCT({a}, {a})",
        columns={"a": "c_a"},
    )
    values = f.evaluate_rows([{"c_a": v} for v in column[:2_000]], ctx)
    assert all(isinstance(v, float) for v in values)


def test_new_functions_refuse_huge_arguments() -> None:
    assert ev('WORKDAY("2024-01-01", 10^9)') == VALUE
    assert ev('WORKDAY("2024-01-01", 2900000)') == NUM  # beyond year 9999
    weekdays = sum(1 for d in range(3_652_059) if d % 7 < 5)  # 0001-01-01 is a Monday
    assert ev('NETWORKDAYS("0001-01-01", "9999-12-31")') == weekdays  # constant time
    assert ev("DATE(2024, 10^9, 1)") == NUM
    assert ev('REPLACE(REPT("a", 30000), 1, 0, REPT("b", 3000))') == LIMIT
    assert ev("CHOOSE(10^9, 1, 2)") == VALUE
    assert ev("MROUND(1e308, 1e-308)") == 1e308  # decimal arithmetic, no 616-digit integer
    assert ev('TEXTJOIN(REPT("-", 20000), TRUE, 1, 2, 3)') == LIMIT


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deep_nesting_of_new_syntax_fails_early_at_parse(depth: int) -> None:
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula("1" + "%" * depth, limits=LONG)
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula("CHOOSE(1, " * depth + "#N/A" + ")" * depth, limits=LONG)
    with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
        compile_formula("IFNA(SUMIF({a}, " * depth + '"x"' + ", {a}))" * depth, limits=LONG)
