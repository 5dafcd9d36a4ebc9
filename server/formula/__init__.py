"""Hypertab's sandboxed formula engine (pure: no I/O, no clock, no ``eval``).

Formulas look like a spreadsheet's: ``{Unit price} * {Qty}``, ``IF({Qty} > 10, "bulk", "")``,
``SUM({Qty})``. Our own tokenizer, parser and compiler turn the text into a tree of Python
closures; user text only ever selects entries in our own tables. Every bound is in
:class:`Limits`. Full language reference: ``docs/formulas.md``.

Public API::

    compile_formula(text, *, columns=None, limits=DEFAULT_LIMITS) -> Formula
        raises FormulaSyntaxError (authoring errors: syntax, size/depth bounds, arity)
    Formula.evaluate(row, ctx=None) -> CellValue            never raises
    Formula.evaluate_rows(rows, ctx=None) -> list[CellValue]
    Formula.row_refs / column_refs / unknown_columns / custom_calls / volatile
    Formula.dependencies -> ColumnRefs
    EvalContext(*, columns=None, functions=None, now=None)  one per recompute pass
    FunctionRegistry(limits).define("NAME(a, b) = body") -> CustomFunction
    recompute_order(graph) / find_cycle / check_no_cycle / plan_change   (dependencies)
    ErrorValue, error_value(code), and the values DIV0 VALUE NAME REF CYCLE LIMIT NUM NA
    parse_formula(text, limits) -> ast.Expr                 the syntax tree only

Exceptions (authoring time only)::

    FormulaError
     ├── FormulaSyntaxError
     │    └── FormulaDefinitionError
     └── FormulaCycleError
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The engine is imported by what it names, at first use: an idle server, and a tenant with
# no formulas, never loads the compiler and the function library (about 2.5 MiB of RSS,
# bench/idle.py). mypy reads the real imports below.
if TYPE_CHECKING:
    from server.formula.compiler import Formula, compile_formula
    from server.formula.context import ColumnId, ColumnSource, EvalContext
    from server.formula.custom import CustomFunction, FunctionRegistry
    from server.formula.dependencies import (
        ColumnRefs,
        RecomputeOrder,
        RecomputePlan,
        check_no_cycle,
        find_cycle,
        plan_change,
        recompute_order,
    )
    from server.formula.errors import (
        FormulaCycleError,
        FormulaDefinitionError,
        FormulaError,
        FormulaSyntaxError,
    )
    from server.formula.functions import BUILTINS
    from server.formula.limits import DEFAULT_LIMITS, Limits
    from server.formula.parser import parse_formula
    from server.formula.values import (
        CYCLE,
        DIV0,
        ERRORS,
        LIMIT,
        NA,
        NAME,
        NUM,
        REF,
        VALUE,
        CellValue,
        ErrorValue,
        error_value,
    )

_WHERE: dict[str, str] = {
    "BUILTINS": "server.formula.functions",
    "CYCLE": "server.formula.values",
    "CellValue": "server.formula.values",
    "ColumnId": "server.formula.context",
    "ColumnRefs": "server.formula.dependencies",
    "ColumnSource": "server.formula.context",
    "CustomFunction": "server.formula.custom",
    "DEFAULT_LIMITS": "server.formula.limits",
    "DIV0": "server.formula.values",
    "ERRORS": "server.formula.values",
    "ErrorValue": "server.formula.values",
    "EvalContext": "server.formula.context",
    "Formula": "server.formula.compiler",
    "FormulaCycleError": "server.formula.errors",
    "FormulaDefinitionError": "server.formula.errors",
    "FormulaError": "server.formula.errors",
    "FormulaSyntaxError": "server.formula.errors",
    "FunctionRegistry": "server.formula.custom",
    "LIMIT": "server.formula.values",
    "Limits": "server.formula.limits",
    "NA": "server.formula.values",
    "NAME": "server.formula.values",
    "NUM": "server.formula.values",
    "REF": "server.formula.values",
    "RecomputeOrder": "server.formula.dependencies",
    "RecomputePlan": "server.formula.dependencies",
    "VALUE": "server.formula.values",
    "check_no_cycle": "server.formula.dependencies",
    "compile_formula": "server.formula.compiler",
    "error_value": "server.formula.values",
    "find_cycle": "server.formula.dependencies",
    "parse_formula": "server.formula.parser",
    "plan_change": "server.formula.dependencies",
    "recompute_order": "server.formula.dependencies",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


__all__ = [
    "BUILTINS",
    "CYCLE",
    "DEFAULT_LIMITS",
    "DIV0",
    "ERRORS",
    "LIMIT",
    "NA",
    "NAME",
    "NUM",
    "REF",
    "VALUE",
    "CellValue",
    "ColumnId",
    "ColumnRefs",
    "ColumnSource",
    "CustomFunction",
    "ErrorValue",
    "EvalContext",
    "Formula",
    "FormulaCycleError",
    "FormulaDefinitionError",
    "FormulaError",
    "FormulaSyntaxError",
    "FunctionRegistry",
    "Limits",
    "RecomputeOrder",
    "RecomputePlan",
    "check_no_cycle",
    "compile_formula",
    "error_value",
    "find_cycle",
    "parse_formula",
    "plan_change",
    "recompute_order",
]
