"""Spreadsheet semantics of every built-in function: at least one assertion each."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from server.formula import (
    BUILTINS,
    DIV0,
    NA,
    NUM,
    REF,
    VALUE,
    CellValue,
    EvalContext,
    compile_formula,
)

ROW: dict[str, CellValue] = {
    "Price": 12.5,
    "Qty": 4,
    "Name": "  Ada   Lovelace ",
    "Born": "1815-12-10",
    "When": "2024-03-31T14:05:09",
    "Empty": None,
    "Flag": True,
}
COLUMNS: dict[str, list[CellValue]] = {
    "Qty": [4, 10, None, "n/a", 6, True],
    "Sku": ["A1", "b2", "C3"],
    "Label": ["apple", "banana", "cherry"],
    "Bad": [1, DIV0],
}
NOW = datetime(2024, 5, 17, 9, 30, 0)


def ev(text: str) -> CellValue:
    ctx = EvalContext(columns=COLUMNS, now=NOW)
    return compile_formula(text).evaluate(ROW, ctx)


CASES: list[tuple[str, CellValue]] = [
    # math
    ("ABS(-3.5)", 3.5),
    ("ROUND(2.675, 2)", 2.68),
    ("ROUND(-2.5)", -3),
    ("ROUND(1234.5678, -2)", 1200),
    ("ROUNDUP(1.21, 1)", 1.3),
    ("ROUNDDOWN(-1.29, 1)", -1.2),
    ("INT(-2.5)", -3),
    ("MOD(-7, 3)", 2),
    ("MOD(7, 0)", DIV0),
    ("POWER(2, 10)", 1024),
    ("SQRT(16)", 4),
    ("SQRT(-1)", NUM),
    ("SIGN(-0.1)", -1),
    ("EXP(0)", 1),
    ("EXP(1000)", NUM),
    ("LN(1)", 0),
    ("LN(0)", NUM),
    ("LOG10(1000)", 3),
    ("ROUND(PI(), 4)", 3.1416),
    ("CEILING(2.1)", 3),
    ("CEILING(7, 5)", 10),
    ("FLOOR(2.9)", 2),
    ("FLOOR(7, 5)", 5),
    # aggregates: bare column = whole column, numbers only
    ("SUM({Qty})", 20),
    ('SUM({Qty}, 5, "1")', 26),
    ("SUM({Bad})", DIV0),
    ("AVERAGE({Qty})", 20 / 3),
    ("AVERAGE(2, 4)", 3),
    ("MIN({Qty})", 4),
    ("MIN({Label})", 0),
    ("MAX({Qty}, 11)", 11),
    ("COUNT({Qty})", 3),
    ('COUNT(1, "a", 1/0)', 1),
    ('COUNT(TRUE, "1", "a", 2)', 3),
    ("COUNTA({Qty})", 5),
    ('COUNTA(1, "", 1/0)', 3),
    ("SUM({Nope})", REF),
    # text
    ('CONCAT("a", 1, TRUE)', "a1TRUE"),
    ('CONCATENATE("x", "y")', "xy"),
    ('TEXTJOIN("-", TRUE, "a", "", "b")', "a-b"),
    ('TEXTJOIN("-", FALSE, "a", "", "b")', "a--b"),
    ("LEN({Name})", 17),
    ('LEFT("hello", 2)', "he"),
    ('LEFT("hello")', "h"),
    ('RIGHT("hello", 3)', "llo"),
    ('RIGHT("hello", 0)', ""),
    ('MID("hello", 2, 3)', "ell"),
    ('MID("hello", 0, 3)', VALUE),
    ('UPPER("abc")', "ABC"),
    ('LOWER("ABC")', "abc"),
    ('PROPER("ada lovelace")', "Ada Lovelace"),
    ("TRIM({Name})", "Ada Lovelace"),
    ('SUBSTITUTE("a-b-c", "-", "+")', "a+b+c"),
    ('SUBSTITUTE("a-b-c", "-", "+", 2)', "a-b+c"),
    ('REPT("ab", 3)', "ababab"),
    ('REPT("ab", -1)', VALUE),
    ('FIND("b", "abcb")', 2),
    ('FIND("B", "abcb")', VALUE),
    ('FIND("b", "abcb", 3)', 4),
    ('SEARCH("B", "abcb")', 2),
    ('TEXT(1234.567, "#,##0.00")', "1,234.57"),
    ('TEXT(0.256, "0.0%")', "25.6%"),
    ('TEXT(5, "000")', "005"),
    ('TEXT(-3.5, "$0.00")', "-$3.50"),
    ('TEXT(1.5, "0.##")', "1.5"),
    ('TEXT({Born}, "dd/mm/yyyy")', "10/12/1815"),
    ('TEXT({When}, "hh:mm")', "14:05"),
    ('TEXT({When}, "dddd, mmmm d")', "Sunday, March 31"),
    ('VALUE(" 12.5 ")', 12.5),
    ('VALUE("50%")', 0.5),
    ('VALUE("abc")', VALUE),
    ('EXACT("a", "A")', False),
    ('EXACT("a", "a")', True),
    # logic
    ('IF({Qty} > 3, "many", "few")', "many"),
    ("IF(FALSE, 1)", False),
    ('IFS({Qty} > 10, "big", {Qty} > 3, "mid")', "mid"),
    ("IFS(FALSE, 1)", NA),
    ('SWITCH({Qty}, 1, "one", 4, "four", "other")', "four"),
    ('SWITCH(9, 1, "one", "other")', "other"),
    ('SWITCH(9, 1, "one")', NA),
    ('IFERROR(1/0, "oops")', "oops"),
    ("IFERROR(5, 0)", 5),
    ('IFNA(MATCH("zz", {Label}, 0), "none")', "none"),
    ("IFNA(1/0, 0)", DIV0),
    ("AND(TRUE, 1, {Flag})", True),
    ("AND(TRUE, 0)", False),
    ("OR(FALSE, 0, 2)", True),
    ("XOR(TRUE, TRUE, TRUE)", True),
    ("NOT({Flag})", False),
    ("TRUE()", True),
    ("FALSE()", False),
    ("BLANK()", None),
    ("ISBLANK({Empty})", True),
    ('ISBLANK("")', False),
    ("ISERROR(1/0)", True),
    ("ISERROR(1)", False),
    ('ISNA(XLOOKUP("zz", {Sku}, {Label}))', True),
    ("ISNUMBER(1/0)", False),
    ("ISNUMBER({Price})", True),
    ("ISTEXT({Name})", True),
    ("ISLOGICAL({Flag})", True),
    # dates (ISO text)
    ("DATE(2024, 2, 29)", "2024-02-29"),
    ("DATE(2024, 13, 1)", "2025-01-01"),
    ("DATE(2024, 3, 0)", "2024-02-29"),
    ("DATE(0, 1, 1)", "1900-01-01"),
    ("YEAR({Born})", 1815),
    ("MONTH({Born})", 12),
    ("DAY({Born})", 10),
    ('YEAR("not a date")', VALUE),
    ("HOUR({When})", 14),
    ("MINUTE({When})", 5),
    ("SECOND({When})", 9),
    ('DAYS("2024-03-01", "2024-02-01")', 29),
    ('DATEDIF("2020-02-29", "2024-02-28", "Y")', 3),
    ('DATEDIF("2024-01-31", "2024-03-30", "M")', 1),
    ('DATEDIF("2024-01-01", "2024-03-01", "D")', 60),
    ('DATEDIF("2024-03-01", "2024-01-01", "D")', NUM),
    ('EDATE("2024-01-31", 1)', "2024-02-29"),
    ('EDATE("2024-01-31", -2)', "2023-11-30"),
    ('EOMONTH("2024-01-15", 1)', "2024-02-29"),
    ('WEEKDAY("2024-05-19")', 1),
    ('WEEKDAY("2024-05-19", 2)', 7),
    ('WEEKDAY("2024-05-20", 3)', 0),
    ("TODAY()", "2024-05-17"),
    ("NOW()", "2024-05-17T09:30:00"),
    # lookup over the table's columns
    ('XLOOKUP("B2", {Sku}, {Label})', "banana"),
    ('XLOOKUP("zz", {Sku}, {Label})', NA),
    ('XLOOKUP("zz", {Sku}, {Label}, "-")', "-"),
    ('MATCH("cherry", {Label})', 3),
    ("INDEX({Label}, 2)", "banana"),
    ("INDEX({Label}, 9)", REF),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_builtin(text: str, expected: CellValue) -> None:
    got = ev(text)
    if isinstance(expected, float) and isinstance(got, float):
        assert got == pytest.approx(expected)
    else:
        assert got == expected
        assert type(got) is type(expected)


def test_every_builtin_has_a_case() -> None:
    conformance = (Path(__file__).with_name("conformance.tsv")).read_text(encoding="utf-8")
    texts = [text for text, _ in CASES] + [line.split("\t")[0] for line in conformance.split("\n")]
    called = {
        name
        for name in BUILTINS
        if any(re.search(rf"(?<![A-Z.]){re.escape(name)}\(", text) for text in texts)
    }
    assert called == set(BUILTINS)


def test_every_builtin_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "formulas.md").read_text()
    missing = [name for name in BUILTINS if f"`{name}(" not in doc]
    assert missing == []


def test_now_without_a_time_in_the_context_is_an_error_not_a_clock_read() -> None:
    assert compile_formula("TODAY()").evaluate({}) == VALUE
    assert compile_formula("NOW()").volatile
    assert not compile_formula("1").volatile


def test_aggregates_scan_each_column_once_per_context() -> None:
    scans: list[str] = []

    def column(cid: str) -> list[CellValue]:
        scans.append(cid)
        return [1, 2, 3]

    ctx = EvalContext(columns=column)
    f = compile_formula("{x} / SUM({x})")
    values = f.evaluate_rows([{"x": 1}, {"x": 2}, {"x": 3}], ctx)
    assert values == [1 / 6, 2 / 6, 3 / 6]
    assert scans == ["x"]
