"""Conformance: formulas pasted from a mainstream spreadsheet give the spreadsheet's value.

``conformance.tsv`` holds the cases, one a line: the formula, the value a spreadsheet gives,
which spreadsheet that value comes from, a note, and (only for the deliberate differences
listed in docs/formulas.md) the value Hypertab gives instead. References:

* ``LibreOffice``: computed by LibreOffice Calc 7.4.7.2 (headless, the sample table loaded,
  wildcards on, case-insensitive as Excel) with ``tests/formula/libreoffice_reference.py``;
* ``Excel``: Microsoft Excel 365 (16.x) as documented by Microsoft, where LibreOffice has no
  such function (XLOOKUP in 7.4) or prints differently (three-digit exponents).

Whole-column arguments read the sample table (``COLUMNS`` below), per-row references its
first row. Date results are written as ISO dates (Hypertab's form); the
spreadsheet's serial number is compared through ``TEXT(value, "YYYY-MM-DD")``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from server.formula import CellValue, ErrorValue, EvalContext, compile_formula, error_value

CASES_FILE = Path(__file__).with_name("conformance.tsv")

# The sample table: per-row references read its first row; whole-column arguments all eight.
# The reference spreadsheet gets the same table in columns A-G, rows 2-9.
COLUMNS: dict[str, list[CellValue]] = {
    "Sorted": [1, 3, 5, 7, 9, 11, 13, 15],
    "Amount": [10, 20, 30, 40, 50, 60, 70, 80],
    "Cat": ["a", "b", "a", "c", "b", "a", None, "A"],
    "Qty": [1, 2, 3, "4", None, 6, 7, 2.5],
    "Name": ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "Apple pie"],
    "Day": [
        "2024-01-01",
        "2024-01-15",
        "2024-02-01",
        "2024-02-15",
        "2024-03-01",
        "2024-03-15",
        "2024-04-01",
        "2024-04-15",
    ],
    "Flag": [True, False, True, None, "x", 0, 1, True],
}
"""Column name -> its cells, top to bottom; the names are also the column ids."""

ROW: dict[str, CellValue] = {name: cells[0] for name, cells in COLUMNS.items()}
"""The row per-row references read."""

REFERENCES = ("LibreOffice", "Excel")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Case:
    """One line of ``conformance.tsv``."""

    formula: str
    expected_text: str
    reference: str
    note: str
    hypertab_text: str

    @property
    def expected(self) -> CellValue:
        """The spreadsheet's value."""
        return parse_expected(self.expected_text)

    @property
    def is_date(self) -> bool:
        """Whether the spreadsheet's value is a date (shown as ISO text)."""
        return _DATE.fullmatch(self.expected_text) is not None

    @property
    def ours(self) -> CellValue:
        """The value Hypertab must give: the spreadsheet's, unless a deliberate difference."""
        return parse_expected(self.hypertab_text) if self.hypertab_text else self.expected


def parse_expected(text: str) -> CellValue:
    """A value as written in the table: ``"text"``, TRUE/FALSE, ``#ERROR``, a date, a number."""
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1].replace('""', '"')
    if text in ("TRUE", "FALSE"):
        return text == "TRUE"
    if text.startswith("#"):
        found = error_value(text)
        assert found is not None, text
        return found
    if _DATE.fullmatch(text):
        return text
    number = float(text)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def load_cases() -> list[Case]:
    """Every case of ``conformance.tsv`` in file order."""
    cases = []
    for line in CASES_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = [*line.split("\t"), "", "", ""]
        cases.append(Case(fields[0], fields[1], fields[2], fields[3], fields[4]))
    return cases


def same_value(expected: CellValue, got: object, *, from_display: bool = False) -> bool:
    """Whether ``got`` is ``expected``: same type, numbers equal to 13 significant digits.

    ``from_display`` compares with a spreadsheet's displayed text instead (CSV export).
    """
    if from_display:
        assert isinstance(got, str)
        if isinstance(expected, bool):
            return got == ("TRUE" if expected else "FALSE")
        if isinstance(expected, int | float):
            scale = 100 if got.endswith("%") else 1  # a percent-formatted result
            try:
                shown = float(got.removesuffix("%")) / scale
            except ValueError:
                return False
            return math.isclose(shown, expected, rel_tol=1e-13, abs_tol=1e-300)
        if isinstance(expected, ErrorValue):
            return got == expected.code
        return got == expected
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(got, expected, rel_tol=1e-13, abs_tol=1e-300)
    return type(expected) is type(got) and expected == got


CASES = load_cases()


def evaluate(text: str) -> CellValue:
    """``text`` evaluated on the sample table's first row."""
    ctx = EvalContext(columns=COLUMNS, now=datetime(2024, 5, 17, 9, 30))
    formula = compile_formula(text, columns={name: name for name in COLUMNS})
    assert not formula.unknown_columns, formula.unknown_columns
    return formula.evaluate(ROW, ctx)


@pytest.mark.parametrize("case", CASES, ids=[c.formula for c in CASES])
def test_conformance(case: Case) -> None:
    got = evaluate(case.formula)
    assert same_value(case.ours, got), f"{case.formula}: got {got!r}, want {case.ours!r}"


def test_the_table_is_large_and_every_case_names_its_reference() -> None:
    assert len(CASES) >= 300
    assert {c.reference for c in CASES} <= set(REFERENCES)
    assert len({c.formula for c in CASES}) == len(CASES)  # no case twice


def test_deliberate_differences_are_few_and_documented() -> None:
    differences = [c for c in CASES if c.hypertab_text]
    assert len(differences) <= len(CASES) // 50
    doc = (Path(__file__).parents[2] / "docs" / "formulas.md").read_text(encoding="utf-8")
    for case in differences:
        assert case.note.startswith("deliberate:"), case.formula
        assert f"`{case.formula}`" in doc, f"{case.formula} is not listed in docs/formulas.md"
