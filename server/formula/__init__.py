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
