"""Compute the conformance cases in a real spreadsheet: LibreOffice Calc, headless.

Not a test (LibreOffice is not a dependency); run by hand after editing ``conformance.tsv``:

    apt-get install libreoffice-calc-nogui
    .venv/bin/python tests/formula/libreoffice_reference.py [--write]

Each case is translated to an OpenDocument formula over the sample table (columns A-G, rows
2-9; per-row references read row 2), written with the table into a flat ``.fods`` sheet
(wildcards on, case-insensitive, as Excel), recalculated and exported to CSV by
``soffice --headless --convert-to csv``. Date results are wrapped in
``TEXT(...; "YYYY-MM-DD")`` so they compare with Hypertab's ISO text. The script prints every
case whose LibreOffice value differs from the expected one; ``--write`` marks the cases
LibreOffice agrees with as ``LibreOffice`` in the reference column (others keep theirs).
"""

from __future__ import annotations

import argparse
import csv
import html
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_formula_conformance import (
    CASES_FILE,
    COLUMNS,
    Case,
    load_cases,
    same_value,
)

from server.formula import BUILTINS, ast, parse_formula

LETTERS = "ABCDEFG"
COLUMN_LETTER = {name: LETTERS[i] for i, name in enumerate(COLUMNS)}
LAST_ROW = 1 + len(next(iter(COLUMNS.values())))
# Excel-compatible functions LibreOffice stores under another name in OpenDocument files.
ODF_NAMES = {
    "CEILING": "COM.MICROSOFT.CEILING",
    "FLOOR": "COM.MICROSOFT.FLOOR",
    "CEILING.MATH": "COM.MICROSOFT.CEILING.MATH",
    "FLOOR.MATH": "COM.MICROSOFT.FLOOR.MATH",
    "CONCAT": "COM.MICROSOFT.CONCAT",
    "TEXTJOIN": "COM.MICROSOFT.TEXTJOIN",
    "IFS": "COM.MICROSOFT.IFS",
    "SWITCH": "COM.MICROSOFT.SWITCH",
    "MAXIFS": "COM.MICROSOFT.MAXIFS",
    "MINIFS": "COM.MICROSOFT.MINIFS",
    "STDEV.S": "COM.MICROSOFT.STDEV.S",
    "STDEV.P": "COM.MICROSOFT.STDEV.P",
    "VAR.S": "COM.MICROSOFT.VAR.S",
    "VAR.P": "COM.MICROSOFT.VAR.P",
    "MODE.SNGL": "COM.MICROSOFT.MODE.SNGL",
    "RANK.EQ": "COM.MICROSOFT.RANK.EQ",
}


def translate(expr: ast.Expr, whole: bool = False) -> str:
    """The OpenDocument formula text of a Hypertab syntax tree."""
    if isinstance(expr, ast.Number):
        return repr(expr.value)
    if isinstance(expr, ast.Text):
        return '"' + expr.value.replace('"', '""') + '"'
    if isinstance(expr, ast.Bool):
        return "TRUE()" if expr.value else "FALSE()"
    if isinstance(expr, ast.Error):
        return expr.code
    if isinstance(expr, ast.ColumnRef):
        letter = COLUMN_LETTER[expr.name]
        return f"[.{letter}2:.{letter}{LAST_ROW}]" if whole else f"[.{letter}2]"
    if isinstance(expr, ast.Unary):
        inner = translate(expr.operand)
        return f"({inner})%" if expr.op == "%" else f"{expr.op}({inner})"
    if isinstance(expr, ast.Binary):
        return f"({translate(expr.left)}){expr.op}({translate(expr.right)})"
    if isinstance(expr, ast.Name):
        raise ValueError("bare names do not translate")
    return _call(expr)


def _call(call: ast.Call) -> str:
    name = call.name.upper()
    spec = BUILTINS[name]
    args = list(call.args)
    if name == "VLOOKUP":  # the column form: key and result columns become a range + index
        keys, results = args[1], args[2]
        assert isinstance(keys, ast.ColumnRef) and isinstance(results, ast.ColumnRef)
        first, last = COLUMN_LETTER[keys.name], COLUMN_LETTER[results.name]
        table = f"[.{first}2:.{last}{LAST_ROW}]"
        index = LETTERS.index(last) - LETTERS.index(first) + 1
        rest = ";".join(translate(a) for a in args[3:])
        return f"VLOOKUP({translate(args[0])};{table};{index}{';' + rest if rest else ''})"
    parts = []
    for i, arg in enumerate(args):
        whole = isinstance(arg, ast.ColumnRef) and (
            spec.aggregate
            or i in spec.column_params
            or i in spec.range_params
            or i in spec.stats_params
        )
        parts.append(translate(arg, whole))
    return f"{ODF_NAMES.get(name, name)}({';'.join(parts)})"


def _cell(value: object) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, bool):
        return (
            '<table:table-cell office:value-type="boolean" '
            f'office:boolean-value="{str(value).lower()}"><text:p>{str(value).upper()}</text:p>'
            "</table:table-cell>"
        )
    if isinstance(value, int | float):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value!r}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    return (
        f'<table:table-cell office:value-type="string"><text:p>{html.escape(str(value))}'
        "</text:p></table:table-cell>"
    )


def document(formulas: list[str]) -> str:
    """A flat OpenDocument sheet: the sample table in A-G, one formula per row in column J."""
    rows = []
    height = max(LAST_ROW, len(formulas))
    for r in range(height):
        cells = []
        for name, values in COLUMNS.items():
            if r == 0:
                cells.append(_cell(name))
            elif r < LAST_ROW:
                cells.append(_cell(values[r - 1]))
            else:
                cells.append("<table:table-cell/>")
        cells.append('<table:table-cell table:number-columns-repeated="2"/>')
        if r < len(formulas):
            cells.append(f'<table:table-cell table:formula="of:={html.escape(formulas[r])}"/>')
        rows.append("<table:table-row>" + "".join(cells) + "</table:table-row>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" office:version="1.2" '
        'office:mimetype="application/vnd.oasis.opendocument.spreadsheet">'
        "<office:body><office:spreadsheet>"
        '<table:calculation-settings table:case-sensitive="false" '
        'table:use-wildcards="true" table:use-regular-expressions="false"/>'
        '<table:table table:name="Sheet1">' + "".join(rows) + "</table:table>"
        "</office:spreadsheet></office:body></office:document>"
    )


def reference_values(cases: list[Case]) -> list[str | None]:
    """LibreOffice's displayed value of each case (``None`` if it does not translate)."""
    formulas: list[str] = []
    index: list[int | None] = []
    for case in cases:
        try:
            text = translate(parse_formula(case.formula))
        except (KeyError, ValueError, AssertionError):
            index.append(None)
            continue
        if case.is_date:
            text = f'TEXT({text};"YYYY-MM-DD")'
        index.append(len(formulas))
        formulas.append(text)
    with tempfile.TemporaryDirectory() as tmp:
        sheet = Path(tmp) / "cases.fods"
        sheet.write_text(document(formulas), encoding="utf-8")
        subprocess.run(
            [
                "soffice",
                "--headless",
                "--convert-to",
                "csv:Text - txt - csv (StarCalc):44,34,76",  # comma, quote, UTF-8
                "--outdir",
                tmp,
                str(sheet),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        with (Path(tmp) / "cases.csv").open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    column = [row[9] if len(row) > 9 else "" for row in rows]
    return [None if i is None else column[i] for i in index]


def version() -> str:
    out = subprocess.run(["soffice", "--version"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split()[:2])  # "LibreOffice 7.4.7.2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="mark agreeing cases")
    args = parser.parse_args()
    cases = load_cases()
    values = reference_values(cases)
    agreed: set[int] = set()
    for i, (case, got) in enumerate(zip(cases, values, strict=True)):
        if got is None:
            print(f"untranslated: {case.formula}")
        elif same_value(case.expected, got, from_display=True):
            agreed.add(i)
        else:
            print(f"differs: {case.formula}\texpected {case.expected_text}\tLibreOffice {got}")
    print(f"{version()}: agrees on {len(agreed)} of {len(cases)} cases")
    if args.write:
        lines = CASES_FILE.read_text(encoding="utf-8").splitlines()
        out, n = [], 0
        for line in lines:
            if line and not line.startswith("#"):
                fields = line.split("\t")
                if n in agreed and (len(fields) < 3 or fields[2] in ("", "LibreOffice")):
                    fields = [*fields[:2], "LibreOffice", *fields[3:]]
                n += 1
                line = "\t".join(fields)
            out.append(line)
        CASES_FILE.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
