"""``server.formula`` names its exports lazily (PEP 562): the name table, ``__all__`` and the
modules they point at must agree, or a caller's import fails only when it first runs."""

from __future__ import annotations

import importlib

import server.formula as formula


def test_every_export_is_in_the_lazy_table_and_resolves() -> None:
    where = formula._WHERE
    assert set(formula.__all__) == set(where)
    for name, module in where.items():
        assert getattr(formula, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        formula.not_a_formula_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_formula_name" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")
