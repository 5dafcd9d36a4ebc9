"""The language: literals, precedence, coercion, comparisons, errors, references."""

from __future__ import annotations

import pytest

from server.formula import (
    DIV0,
    NAME,
    NUM,
    REF,
    VALUE,
    CellValue,
    ErrorValue,
    EvalContext,
    FormulaError,
    FormulaSyntaxError,
    ast,
    compile_formula,
    error_value,
    parse_formula,
)


def ev(text: str, row: dict[str, CellValue] | None = None) -> CellValue:
    return compile_formula(text).evaluate(row or {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ^ 3 ^ 2", 64),  # left-associative, like Excel
        ("-2 ^ 2", 4),  # negation binds tighter than ^, like Excel
        ("2 ^ -1", 0.5),
        ("10 - 4 - 3", 3),
        ("12 / 3 / 2", 2),
        ('1 + 2 & "x"', "3x"),
        ('"a" & 1 + 2 = "a3"', True),
        ("1 < 2 = TRUE", True),
        ("=1+1", 2),
        ("--3", 3),
        ('+"a"', "a"),
        (".5 + 1e2", 100.5),
    ],
)
def test_precedence_and_literals(text: str, expected: CellValue) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"say ""hi"""', 'say "hi"'),
        ("true", True),
        ("FALSE", False),
        ('"3" + 1', 4),
        ("TRUE + TRUE", 2),
        ("{blank} + 1", 1),
        ('"a" + 1', VALUE),
        ('"" + 1', VALUE),
        ('0.1 + 0.2 & ""', "0.3"),
        ('1/3 & ""', "0.333333333333333"),
        ("6 / 3", 2),
        ('"abc" = "ABC"', True),
        ('"a" < "B"', True),
        ('1 < "a"', True),
        ('"z" < TRUE', True),
        ("{blank} = 0", True),
        ('{blank} = ""', True),
        ("{blank} = FALSE", True),
        ("1 <> 1.0", False),
        ('IF("yes", 1, 2)', VALUE),
        ("IF(2, 1, 2)", 1),
        ("{blank}", None),
        ('"2024-01-02" > "2023-12-31"', True),
    ],
)
def test_coercion_and_comparison(text: str, expected: CellValue) -> None:
    assert ev(text, {"blank": None}) == expected


def test_errors_propagate_left_to_right_and_iferror_catches() -> None:
    assert ev("1/0 + {x}", {"x": "a"}) == DIV0
    assert ev("{x} + 1/0", {"x": "a"}) == VALUE
    assert ev('UPPER(1/0) & "x"') == DIV0
    assert ev("IFERROR(1/0 + 1, -1)") == -1
    assert ev("IFERROR(nosuch(1), 0)") == 0
    assert ev("IF(TRUE, 1, 1/0)") == 1  # the untaken branch is not evaluated


def test_error_values_from_cells_propagate() -> None:
    assert ev("{x} * 2", {"x": DIV0}) == DIV0
    assert ev("ISERROR({x})", {"x": DIV0}) is True
    assert ev("{x}", {"x": error_value("#REF!")}) == REF


def test_error_value_type() -> None:
    assert str(DIV0) == "#DIV/0!"
    assert ErrorValue("#DIV/0!") == DIV0
    assert error_value("#nope") is None
    with pytest.raises(AttributeError):
        DIV0.code = "x"  # type: ignore[misc]


def test_foreign_cell_types_are_value_errors() -> None:
    assert ev("{x}", {"x": [1, 2]}) == VALUE  # type: ignore[dict-item]
    assert ev("{x} + 1", {"x": object()}) == VALUE  # type: ignore[dict-item]


def test_column_binding_names_to_ids() -> None:
    f = compile_formula(
        "{Unit price} * {qty} + SUM({Qty}) + {Gone}",
        columns={"Unit price": "c1", "Qty": "c2"},
    )
    assert f.row_refs == {"c1", "c2"}
    assert f.column_refs == {"c2"}
    assert f.unknown_columns == {"Gone"}
    assert f.evaluate({"c1": 2, "c2": 3}) == REF
    g = compile_formula("{Unit price} * {qty}", columns={"Unit price": "c1", "Qty": "c2"})
    assert g.evaluate({"c1": 2, "c2": 3}) == 6
    assert g.dependencies.all == {"c1", "c2"}


def test_ambiguous_case_insensitive_name_is_unknown() -> None:
    f = compile_formula("{qty}", columns={"Qty": "a", "QTY": "b"})
    assert f.unknown_columns == {"qty"}
    assert f.evaluate({}) == REF


def test_column_reference_escapes() -> None:
    f = compile_formula("{a}}b} & { spaced }")
    assert f.row_refs == {"a}b", " spaced "}


def test_spaced_column_names_are_referable() -> None:
    columns = {" Qty ": "q1", "Qty": "q2", "Price ": "p"}
    f = compile_formula("{ Qty } * 10 + {Qty} + {Price} + {price }", columns=columns)
    assert f.evaluate({"q1": 1, "q2": 2, "p": 3}) == 1 * 10 + 2 + 3 + 3
    assert f.unknown_columns == frozenset()
    # Stray spaces are forgiven only when nothing matches exactly or case-insensitively.
    g = compile_formula("{ qty}", columns={" Qty ": "q1", "QTY": "q2"})
    assert g.unknown_columns == {" qty"}


def test_custom_calls_and_volatility_are_exposed() -> None:
    f = compile_formula('MARGIN({p}, 1) + IF(TODAY() = "x", 1, 0)')
    assert f.custom_calls == {"MARGIN"}
    assert f.volatile


def test_output_normalisation() -> None:
    assert ev("2 ^ 60") == float(2**60)  # beyond 2**53: a float on the wire
    assert type(ev("4 / 2")) is int
    assert ev("-0.0 * 1") == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1 +",
        "(1",
        "1)",
        "SUM(1,,2)",
        '"unterminated',
        "{unterminated",
        "{}",
        "1 .real",
        "a.b(",
        "1 2",
        "#",
        "[1]",
        "x => 1",
        "1 % 2",
        "%",
        "#FOO!",
        "#N/A(1)",
        "@x",
        "ROUND()",
        "IF(1)",
        "PI(1)",
        "IFS(TRUE, 1, FALSE)",
        "XLOOKUP(1, 2, 3)",
        "INDEX({a} + 1, 1)",
    ],
)
def test_authoring_errors_raise_syntax_error(text: str) -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        compile_formula(text)
    assert isinstance(info.value, FormulaError)


def test_syntax_error_reports_position() -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        compile_formula("1 + (2 * 3")
    assert info.value.position == 10
    assert "character 11" in str(info.value)


def test_parse_formula_gives_frozen_tree() -> None:
    tree = parse_formula("SUM({a}) + -x")
    assert tree == ast.Binary(
        "+", ast.Call("SUM", (ast.ColumnRef("a"),)), ast.Unary("-", ast.Name("x"))
    )


def test_number_literal_out_of_range_is_num() -> None:
    assert ev("1e999") == NUM  # beyond a double, as a spreadsheet's overflow
    assert ev("IFERROR(1e999, 0)") == 0
    assert ev("10^308") == 1e308  # a valid double: computed, not refused


def test_bare_name_outside_function_is_name_error() -> None:
    assert ev("price * 2") == NAME


def test_context_is_reusable_across_formulas() -> None:
    ctx = EvalContext(columns={"a": [1, 2]})
    assert compile_formula("SUM({a})").evaluate({}, ctx) == 3
    assert compile_formula("MAX({a})").evaluate({}, ctx) == 2
