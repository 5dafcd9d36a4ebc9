"""docs/security.md is the index of the attack tests: every case has a unique id and names
tests that exist (or is marked pending: a fix still on its way), every attack test here is
named after a case of the document, and at least 60 cases have tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text()
ROW = re.compile(r"^\| ([A-Z]{2,3}-\d{2}) \|(.*)\|$", re.MULTILINE)
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")


def _cases() -> dict[str, str]:
    rows = ROW.findall(DOC)
    ids = [case for case, _ in rows]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return dict(rows)


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_at_least_60_cases_each_naming_tests_that_exist() -> None:
    cases = _cases()
    tested = {case: row for case, row in cases.items() if REFERENCE.search(row)}
    assert len(tested) >= 60
    for case, row in cases.items():
        references = REFERENCE.findall(row)
        # a defect whose fix (and its tests) is still on its way from another branch
        assert references or "*(pending: " in row, f"{case} names no test"
        for path, name in references:
            assert (ROOT / path).is_file(), f"{case}: no file {path}"
            assert name in _tests_in(ROOT / path), f"{case}: no {name} in {path}"


def test_every_attack_test_is_a_case_of_the_document() -> None:
    cases = _cases()
    referenced = {(p, n) for row in cases.values() for p, n in REFERENCE.findall(row)}
    for path in sorted((ROOT / "tests" / "security").glob("test_attack_*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in _tests_in(path):
            match = re.match(r"test_([a-z]{2,3})(\d{2})_", name)
            if match is None:
                continue  # a test of the document itself
            case = f"{match[1].upper()}-{match[2]}"
            assert case in cases, f"{rel}::{name}: no case {case}"
            assert (rel, name) in referenced, f"{rel}::{name} is not referenced"
            assert f"{rel}::{name}" in cases[case], f"{name} is listed under another case"
