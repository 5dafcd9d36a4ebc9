"""Every hard bound of the formula engine, in one frozen, configurable dataclass.

Authoring-time bounds (length, depth, nodes, names, parameters, number of custom functions)
reject a formula or definition with :class:`~server.formula.errors.FormulaSyntaxError`.
Evaluation-time bounds end the evaluation with the ``#LIMIT!`` error value:

* the *budgets* (steps, custom-call depth, evaluation depth) abort the whole evaluation;
  ``IFERROR`` cannot catch that, so spent work cannot be resumed;
* the *value sizes* (number magnitude, text length) are checked **before** a result is
  built, so ``9^(9^9)`` or ``REPT("x", 10^9)`` are never computed; the resulting error
  value (``#NUM!`` for a number beyond a double, as in a spreadsheet; ``#LIMIT!`` for a
  text too long or a number beyond a lower configured ``max_number``) propagates like any
  error value and ``IFERROR`` may catch it;
* the *scan budget* bounds the extra column scans of conditional aggregates and wildcard
  lookups per evaluation context (``#LIMIT!`` for the cells that would exceed it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard bounds; the defaults suit interactive tables. See ``docs/formulas.md``."""

    #: characters in a formula or custom-function definition (Excel's is 8192)
    max_formula_length: int = 8192
    #: nesting of parentheses/calls/operators while parsing, and height of the syntax tree
    max_depth: int = 64
    #: syntax-tree nodes in one formula or custom-function body
    max_nodes: int = 2000
    #: evaluation steps per cell: one per syntax node of the formula, plus the body's node
    #: count at every custom-function call
    max_steps: int = 10_000
    #: largest magnitude of any number produced (inputs and results); the default is the
    #: largest double, so every value a spreadsheet can hold is allowed and only an overflow
    #: (``#NUM!``) is refused; a lower bound gives ``#LIMIT!`` beyond it
    max_number: float = 1.7976931348623157e308
    #: longest text produced (Excel's cell limit)
    max_text_length: int = 32_767
    #: nested custom-function calls (recursion depth)
    max_call_depth: int = 32
    #: cells that conditional aggregates (SUMIF...) and wildcard lookups may scan per
    #: evaluation context, i.e. per recompute pass, beyond the one scan every column gets
    max_scan_cells: int = 5_000_000
    #: sum of the syntax-tree heights of the formula and of the active custom-function calls;
    #: bounds the Python stack the evaluator uses
    max_eval_depth: int = 256
    #: parameters of one custom function
    max_params: int = 16
    #: characters in a custom-function or parameter name
    max_name_length: int = 64
    #: custom functions in one registry (one tenant)
    max_functions: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"Limits.{f.name} must be positive, got {value!r}")
        # The parser and the evaluator recurse once or twice per level; these caps keep
        # them well inside CPython's default recursion limit of 1000 frames.
        if self.max_depth > 200:
            raise ValueError("Limits.max_depth must be at most 200")
        if self.max_eval_depth > 400:
            raise ValueError("Limits.max_eval_depth must be at most 400")
        if self.max_number > 1.7976931348623157e308:
            raise ValueError("Limits.max_number must be a finite double")


DEFAULT_LIMITS = Limits()
"""The limits used when none are given."""
