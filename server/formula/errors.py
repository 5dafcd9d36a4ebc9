"""Exceptions of the formula engine, and the two internal signals of the evaluator.

Exception tree (one root for the package)::

    FormulaError                  root: something about a formula or definition is wrong
     ├── FormulaSyntaxError       the text is not a formula we accept (author's fault):
     │    │                       bad syntax, wrong argument count, too long/deep/big
     │    └── FormulaDefinitionError   a custom-function definition is malformed
     └── FormulaCycleError        setting a formula would make columns depend on themselves

These are raised only while *authoring* (compiling a formula, defining a custom function,
checking the dependency graph). Evaluation never raises: every failure at evaluation time is
an :class:`~server.formula.values.ErrorValue` such as ``#DIV/0!`` or ``#LIMIT!``.

``Signal`` and ``Abort`` are private control flow of the evaluator. They never leave
:meth:`Formula.evaluate <server.formula.compiler.Formula.evaluate>`; they are not part of the
``FormulaError`` tree on purpose, so no caller can confuse them with authoring errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.formula.values import ErrorValue


class FormulaError(Exception):
    """Root of every exception the formula engine raises (authoring time only)."""


class FormulaSyntaxError(FormulaError):
    """The formula text cannot be accepted; ``position`` is a 0-based offset or ``None``."""

    def __init__(self, message: str, position: int | None = None) -> None:
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(message + where)
        self.message = message
        self.position = position


class FormulaDefinitionError(FormulaSyntaxError):
    """A custom-function definition is malformed (name, parameters, body rules, limits)."""


class FormulaCycleError(FormulaError):
    """A formula would make a column depend on itself; ``cycle`` is the column path."""

    def __init__(self, cycle: Sequence[object]) -> None:
        path = " -> ".join(str(c) for c in cycle)
        super().__init__(f"formula would create a reference cycle: {path}")
        self.cycle = tuple(cycle)


class Signal(Exception):
    """Internal: an error value travelling up the evaluation (IFERROR may catch it)."""

    __slots__ = ("error",)

    def __init__(self, error: ErrorValue) -> None:
        self.error = error


class Abort(Exception):
    """Internal: a budget (steps, call depth, evaluation depth) ran out. Nothing catches it
    but the top of :meth:`Formula.evaluate`, which turns it into ``#LIMIT!``: a formula must
    not be able to keep working after its budget is spent by wrapping work in IFERROR."""
