"""Compiler: a syntax tree to a tree of Python closures, and the :class:`Formula` it yields.

How it works: each node becomes one closure ``(row, ctx) -> value`` that calls its children's
closures; column names are resolved to ids, and built-ins to their implementation, once at
compile time, so evaluating a cell is a few nested Python calls with no dispatch on node
types. Nothing here uses ``eval``/``exec``/``compile`` or looks up attributes by name: user
text only ever selects entries of our own dictionaries.

Errors travel as the internal ``Signal`` exception (cheap when nothing fails, and it needs
no check after every operation); ``IFERROR`` and friends catch it; ``Formula.evaluate``
turns it into the error value it returns. Budgets:

* steps: a formula is charged its node count when evaluation starts (an upper bound of the
  work it can do by itself) and every custom-function call is charged its body's node
  count; beyond ``max_steps`` the evaluation is aborted with ``#LIMIT!``;
* depth: custom calls add to a call depth and to an evaluation depth (the sum of the tree
  heights being evaluated, which bounds the Python stack), both bounded;
* sizes: number results are checked against ``max_number`` and texts against
  ``max_text_length`` before they are built (see ``limits.py``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from server.formula import ast
from server.formula.context import ColumnId, CompiledFunction, EvalContext
from server.formula.dependencies import ColumnRefs
from server.formula.errors import (
    Abort,
    FormulaDefinitionError,
    FormulaSyntaxError,
    Signal,
)
from server.formula.functions import BUILTINS
from server.formula.functions.dates import Moment, moment_arithmetic, number_or_moment
from server.formula.functions.numeric import power
from server.formula.limits import DEFAULT_LIMITS, Limits
from server.formula.names import resolve_column
from server.formula.parser import parse_formula
from server.formula.values import (
    DIV0,
    ERRORS,
    LIMIT,
    NAME,
    NUM,
    REF,
    VALUE,
    CellValue,
    ErrorValue,
    check_number,
    compare,
    numbers_compare,
    output,
    to_number,
    to_text,
    too_big,
)

Closure = Callable[[Any, EvalContext], Any]

_PLAIN: Final = frozenset({type(None), bool, int, float, str})
_NUMERIC: Final = frozenset({int, float})
_CUSTOM_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_COMPARISON: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


class Formula:
    """A compiled formula: evaluate it per row; read its references for recomputation.

    Attributes: ``source`` (the text), ``expr`` (the syntax tree), ``row_refs`` (column ids
    read from the evaluated row), ``column_refs`` (column ids read whole, by aggregates and
    lookups), ``unknown_columns`` (names that matched no column; they evaluate to ``#REF!``),
    ``custom_calls`` (names of non-built-in functions called; they resolve at evaluation),
    ``volatile`` (uses ``NOW``/``TODAY``), ``limits``.
    """

    __slots__ = (
        "_fn",
        "column_refs",
        "cost",
        "custom_calls",
        "expr",
        "height",
        "limits",
        "row_refs",
        "source",
        "unknown_columns",
        "volatile",
    )

    def __init__(
        self, source: str, expr: ast.Expr, fn: Closure, scope: _Scope, height: int
    ) -> None:
        self.source = source
        self.expr = expr
        self._fn = fn
        self.row_refs: frozenset[ColumnId] = frozenset(scope.row_refs)
        self.column_refs: frozenset[ColumnId] = frozenset(scope.column_refs)
        self.unknown_columns: frozenset[str] = frozenset(scope.unknown_columns)
        self.custom_calls: frozenset[str] = frozenset(scope.custom_calls)
        self.volatile = scope.volatile
        self.limits = scope.limits
        self.cost = scope.nodes
        self.height = height

    def __repr__(self) -> str:
        return f"Formula({self.source!r})"

    @property
    def dependencies(self) -> ColumnRefs[ColumnId]:
        """The columns read, for :mod:`server.formula.dependencies`."""
        return ColumnRefs(self.row_refs, self.column_refs)

    def evaluate(
        self, row: Mapping[ColumnId, CellValue], ctx: EvalContext | None = None
    ) -> CellValue:
        """The formula's value for ``row`` (cell values by column id; a missing id is blank).

        Never raises: every failure is an :class:`ErrorValue`. ``ctx`` gives whole columns,
        custom functions and the time; without it aggregates give ``#REF!``, custom
        functions ``#NAME?`` and ``NOW()`` ``#VALUE!``.
        """
        if ctx is None:
            ctx = EvalContext()
        limits = self.limits
        ctx.limits = limits
        ctx.steps = self.cost
        ctx.depth = 0
        ctx.eval_depth = self.height
        if self.cost > limits.max_steps:
            return LIMIT
        try:
            return output(self._fn(row, ctx), limits.max_number)
        except Signal as s:
            return s.error
        except (Abort, RecursionError, MemoryError):
            return LIMIT
        except OverflowError:
            return NUM
        except Exception:  # defensive: the engine's contract is to never raise
            return VALUE

    def evaluate_rows(
        self, rows: Iterable[Mapping[ColumnId, CellValue]], ctx: EvalContext | None = None
    ) -> list[CellValue]:
        """``[self.evaluate(row, ctx) for row in rows]``, sharing one context."""
        if ctx is None:
            ctx = EvalContext()
        evaluate = self.evaluate
        return [evaluate(row, ctx) for row in rows]


@dataclass
class _Scope:
    """What compilation of one formula or function body knows and collects."""

    limits: Limits
    columns: Mapping[str, ColumnId] | None = None
    params: dict[str, int] | None = None  # set inside a custom function body
    row_refs: set[ColumnId] = field(default_factory=set)
    column_refs: set[ColumnId] = field(default_factory=set)
    unknown_columns: set[str] = field(default_factory=set)
    custom_calls: set[str] = field(default_factory=set)
    volatile: bool = False
    nodes: int = 0

    def resolve(self, name: str) -> ColumnId | None:
        """The id of column ``name`` by :func:`~server.formula.names.resolve_column`."""
        if self.params is not None:
            raise FormulaDefinitionError(
                f"custom functions cannot read columns ({{{name}}}); pass values as parameters"
            )
        if self.columns is None:
            return name
        found = resolve_column(self.columns, name)
        if found is None:
            self.unknown_columns.add(name)
        return found


def compile_formula(
    text: str,
    *,
    columns: Mapping[str, ColumnId] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Formula:
    """Parse and compile ``text``; ``columns`` maps column names to ids.

    Without ``columns``, a reference's id is its name (handy in tests). A name that is not
    in ``columns`` compiles to ``#REF!`` and is listed in ``Formula.unknown_columns``, so
    the caller may reject it instead. Raises :class:`FormulaSyntaxError` for text that is
    not a formula, exceeds a bound of ``limits``, or calls a built-in with the wrong number
    of arguments. Unknown function names are not errors here: they evaluate to ``#NAME?``
    unless a custom function of that name exists at evaluation.
    """
    expr = parse_formula(text, limits)
    scope = _Scope(limits=limits, columns=columns)
    if isinstance(expr, ast.Binary) and expr.op in ("+", "-"):
        # Spreadsheets set the result of a formula's *final* addition or subtraction to 0
        # when it is only rounding noise (0.1 + 0.2 - 0.3 shows 0); so do we.
        scope.nodes += 1
        left, lh = _compile(expr.left, scope)
        right, rh = _compile(expr.right, scope)
        fn: Closure = _binary(expr.op, left, right, limits, snap=True)
        height = 1 + max(lh, rh)
    else:
        fn, height = _compile(expr, scope)
    return Formula(text, expr, fn, scope, height)


def compile_body(
    expr: ast.Expr, name: str, params: tuple[str, ...], limits: Limits
) -> tuple[CompiledFunction, frozenset[str], bool]:
    """Compile a custom function's body: (the function, custom names it calls, volatile)."""
    scope = _Scope(limits=limits, params={p.casefold(): i for i, p in enumerate(params)})
    fn, height = _compile(expr, scope)
    compiled = CompiledFunction(
        name=name, arity=len(params), body=fn, cost=scope.nodes, height=height
    )
    return compiled, frozenset(scope.custom_calls), scope.volatile


def _compile(node: ast.Expr, scope: _Scope) -> tuple[Closure, int]:
    """Closure and tree height of ``node``. Recursion is bounded by the parser's depth check."""
    scope.nodes += 1
    if isinstance(node, ast.Number):
        return _number_literal(node.value, scope.limits), 1
    if isinstance(node, ast.Text):
        if len(node.value) > scope.limits.max_text_length:
            return _raises(LIMIT), 1
        return _constant(node.value), 1
    if isinstance(node, ast.Bool):
        return _constant(node.value), 1
    if isinstance(node, ast.Error):
        return _raises(ERRORS[node.code]), 1
    if isinstance(node, ast.ColumnRef):
        return _row_ref(node.name, scope), 1
    if isinstance(node, ast.Name):
        return _name(node.name, scope), 1
    if isinstance(node, ast.Unary):
        operand, h = _compile(node.operand, scope)
        if node.op == "%":
            return _percent(operand), h + 1
        return (_negate(operand) if node.op == "-" else operand), h + 1
    if isinstance(node, ast.Binary):
        left, lh = _compile(node.left, scope)
        right, rh = _compile(node.right, scope)
        return _binary(node.op, left, right, scope.limits), 1 + max(lh, rh)
    return _call(node, scope)


def _constant(value: object) -> Closure:
    def constant(row: Any, ctx: EvalContext) -> object:
        return value

    return constant


def _raises(error: ErrorValue) -> Closure:
    def failing(row: Any, ctx: EvalContext) -> object:
        raise Signal(error)

    return failing


def _number_literal(value: int | float, limits: Limits) -> Closure:
    if not -limits.max_number <= value <= limits.max_number:
        return _raises(too_big(limits.max_number))
    return _constant(value)


def _foreign(v: object) -> object:
    """A cell value that is not a plain one: errors propagate, other types are #VALUE!."""
    if type(v) is ErrorValue:
        raise Signal(v)
    raise Signal(VALUE)


def _row_ref(name: str, scope: _Scope) -> Closure:
    column = scope.resolve(name)
    if column is None:
        return _raises(REF)
    scope.row_refs.add(column)

    def row_ref(row: Any, ctx: EvalContext) -> object:
        v = row.get(column)
        if type(v) in _PLAIN:
            return v
        return _foreign(v)

    return row_ref


def _name(name: str, scope: _Scope) -> Closure:
    index = scope.params.get(name.casefold()) if scope.params is not None else None
    if index is None:
        return _raises(NAME)

    def parameter(args: Any, ctx: EvalContext) -> object:
        v = args[index]
        if type(v) in _PLAIN:
            return v
        return _foreign(v)

    return parameter


def _negate(operand: Closure) -> Closure:
    def negate(row: Any, ctx: EvalContext) -> object:
        v = operand(row, ctx)
        return -(v if type(v) in _NUMERIC else to_number(v))

    return negate


# A final sum this much smaller than its larger operand is rounding noise (about 8 ulps).
_NOISE: Final = 2.0**-49


def _snapped(
    apply: Callable[[Any, Any], Any], left: Closure, right: Closure, op: str, top: float
) -> Closure:
    """``+``/``-`` as a formula's last operation: a float result within rounding noise of
    zero becomes 0, as spreadsheets do (``0.1 + 0.2 - 0.3`` is 0, not 5.55E-17)."""

    def final_add_or_subtract(row: Any, ctx: EvalContext) -> object:
        a = left(row, ctx)
        if type(a) not in _NUMERIC:
            a = number_or_moment(a)
            if type(a) is Moment:
                return moment_arithmetic(op, a, number_or_moment(right(row, ctx)))
        b = right(row, ctx)
        if type(b) not in _NUMERIC:
            b = number_or_moment(b)
            if type(b) is Moment:
                return moment_arithmetic(op, a, b)
        r = apply(a, b)
        # The cheap range test first: noise only matters for results near zero (operands up
        # to ~5e11 noise stays below 1e-3; beyond, the double is kept).
        if (
            -1e-3 < r < 1e-3
            and type(r) is float
            and r != 0
            and abs(r) <= _NOISE * max(abs(a), abs(b))
        ):
            return 0
        if -top <= r <= top:
            return r
        return check_number(r, top)

    return final_add_or_subtract


def _percent(operand: Closure) -> Closure:
    def percent(row: Any, ctx: EvalContext) -> object:
        v = operand(row, ctx)
        return (v if type(v) in _NUMERIC else to_number(v)) / 100

    return percent


def _binary(
    op: str, left: Closure, right: Closure, limits: Limits, *, snap: bool = False
) -> Closure:
    top = limits.max_number
    if op in ("+", "-"):
        apply = _ARITHMETIC[op]
        if snap:
            return _snapped(apply, left, right, op, top)

        def add_or_subtract(row: Any, ctx: EvalContext) -> object:
            a = left(row, ctx)
            if type(a) not in _NUMERIC:
                a = number_or_moment(a)  # before the right side: the leftmost error wins
                if type(a) is Moment:
                    return moment_arithmetic(op, a, number_or_moment(right(row, ctx)))
            b = right(row, ctx)
            if type(b) not in _NUMERIC:
                b = number_or_moment(b)
                if type(b) is Moment:
                    return moment_arithmetic(op, a, b)
            r = apply(a, b)
            if -top <= r <= top:
                return r
            return check_number(r, top)

        return add_or_subtract
    if op in _ARITHMETIC:
        apply = _ARITHMETIC[op]

        def arithmetic(row: Any, ctx: EvalContext) -> object:
            a = left(row, ctx)
            if type(a) not in _NUMERIC:
                a = to_number(a)  # before the right side: the leftmost error wins
            b = right(row, ctx)
            if type(b) not in _NUMERIC:
                b = to_number(b)
            r = apply(a, b)
            if -top <= r <= top:
                return r
            return check_number(r, top)

        return arithmetic
    if op == "/":

        def divide(row: Any, ctx: EvalContext) -> object:
            a = left(row, ctx)
            if type(a) not in _NUMERIC:
                a = to_number(a)  # before the right side: the leftmost error wins
            b = right(row, ctx)
            if type(b) not in _NUMERIC:
                b = to_number(b)
            if b == 0:
                raise Signal(DIV0)
            r = a / b
            if -top <= r <= top:
                return r
            return check_number(r, top)

        return divide
    if op == "^":

        def raise_power(row: Any, ctx: EvalContext) -> object:
            return power(to_number(left(row, ctx)), to_number(right(row, ctx)), top)

        return raise_power
    if op == "&":
        max_text = limits.max_text_length

        def concatenate(row: Any, ctx: EvalContext) -> object:
            a = to_text(left(row, ctx))
            b = to_text(right(row, ctx))
            if len(a) + len(b) > max_text:  # checked before building
                raise Signal(LIMIT)
            return a + b

        return concatenate
    test = _COMPARISON[op]

    def comparison(row: Any, ctx: EvalContext) -> object:
        a = left(row, ctx)
        b = right(row, ctx)
        ta, tb = type(a), type(b)
        if ta is int and tb is int:
            return test(a, b)  # exact: no rounding can make two integers equal
        if ta in _NUMERIC and tb in _NUMERIC:
            return test(numbers_compare(a, b), 0)
        return test(compare(a, b), 0)

    return comparison


def _python_error(exc: Exception) -> ErrorValue:
    """The error value for a Python arithmetic failure inside a built-in (defensive)."""
    if isinstance(exc, ZeroDivisionError):
        return DIV0
    if isinstance(exc, OverflowError):
        return NUM
    if isinstance(exc, ArithmeticError):
        return NUM
    return VALUE


def _call(node: ast.Call, scope: _Scope) -> tuple[Closure, int]:
    name = node.name.upper()
    spec = BUILTINS.get(name)
    if spec is None:
        return _custom_call(node, name, scope)
    n = len(node.args)
    if not spec.min_args <= n <= spec.max_args:
        if spec.min_args == spec.max_args:
            expected = f"{spec.min_args}"
        elif spec.max_args >= 255:
            expected = f"at least {spec.min_args}"
        else:
            expected = f"{spec.min_args} to {spec.max_args}"
        raise FormulaSyntaxError(f"{name} takes {expected} argument(s), not {n}")
    if spec.arg_parity is not None and n % 2 != spec.arg_parity:
        raise FormulaSyntaxError(f"{name} takes its arguments in pairs")
    scope.volatile = scope.volatile or spec.volatile
    args: list[Closure] = []
    height = 0
    for i, arg in enumerate(node.args):
        whole = isinstance(arg, ast.ColumnRef) and (
            spec.aggregate or i in spec.range_params or i in spec.stats_params
        )
        if i in spec.column_params or whole:
            if not isinstance(arg, ast.ColumnRef):
                raise FormulaSyntaxError(
                    f"argument {i + 1} of {name} must be a column reference like {{Name}}"
                )
            scope.nodes += 1
            as_view = i in spec.column_params or i in spec.range_params
            args.append(_whole_column(arg.name, scope, as_view=as_view))
            h = 1
        else:
            closure, h = _compile(arg, scope)
            args.append(_seeing_errors(closure) if spec.kind == "sees_errors" else closure)
        height = max(height, h)
    fn = spec.fn
    cargs = tuple(args)
    if spec.kind == "lazy":

        def lazy_call(row: Any, ctx: EvalContext) -> object:
            return fn(row, ctx, cargs)

        return lazy_call, height + 1
    return _eager_call(fn, cargs, scope.limits), height + 1


def _whole_column(name: str, scope: _Scope, *, as_view: bool) -> Closure:
    column = scope.resolve(name)
    if column is None:
        return _raises(REF)
    scope.column_refs.add(column)
    if as_view:

        def column_view(row: Any, ctx: EvalContext) -> object:
            return ctx.column_view(column)

        return column_view

    def column_stats(row: Any, ctx: EvalContext) -> object:
        return ctx.column_stats(column)

    return column_stats


def _seeing_errors(closure: Closure) -> Closure:
    def seeing_errors(row: Any, ctx: EvalContext) -> object:
        try:
            return closure(row, ctx)
        except Signal as s:
            return s.error

    return seeing_errors


def _eager_call(fn: Callable[..., Any], args: tuple[Closure, ...], limits: Limits) -> Closure:
    top = limits.max_number

    def checked(r: object) -> object:
        if type(r) in _NUMERIC and not -top <= r <= top:  # type: ignore[operator]
            return check_number(r, top)  # type: ignore[arg-type]
        return r

    if len(args) == 1:
        (a0,) = args

        def call1(row: Any, ctx: EvalContext) -> object:
            v0 = a0(row, ctx)
            try:
                r = fn(ctx, v0)
            except (ArithmeticError, ValueError) as e:
                raise Signal(_python_error(e)) from None
            if type(r) in _NUMERIC and not -top <= r <= top:
                return check_number(r, top)
            return r

        return call1
    if len(args) == 2:
        a0, a1 = args

        def call2(row: Any, ctx: EvalContext) -> object:
            v0 = a0(row, ctx)
            v1 = a1(row, ctx)
            try:
                r = fn(ctx, v0, v1)
            except (ArithmeticError, ValueError) as e:
                raise Signal(_python_error(e)) from None
            if type(r) in _NUMERIC and not -top <= r <= top:
                return check_number(r, top)
            return r

        return call2

    def call(row: Any, ctx: EvalContext) -> object:
        values = [a(row, ctx) for a in args]
        try:
            r = fn(ctx, *values)
        except (ArithmeticError, ValueError) as e:
            raise Signal(_python_error(e)) from None
        return checked(r)

    return call


def _custom_call(node: ast.Call, name: str, scope: _Scope) -> tuple[Closure, int]:
    if _CUSTOM_NAME_RE.fullmatch(name) is None:
        # Not even a possible custom-function name (e.g. __import__): never resolvable.
        for arg in node.args:
            _compile(arg, scope)  # still count and validate the arguments
        return _raises(NAME), 1
    scope.custom_calls.add(name)
    compiled = [_compile(arg, scope) for arg in node.args]
    args = tuple(_seeing_errors(c) for c, _ in compiled)
    height = 1 + max((h for _, h in compiled), default=0)
    arity = len(args)

    def custom_call(row: Any, ctx: EvalContext) -> object:
        functions = ctx.functions
        target = functions.lookup(name) if functions is not None else None
        if target is None:
            raise Signal(NAME)
        if target.arity != arity:
            raise Signal(VALUE)
        # Arguments are evaluated before the call; an error argument is passed as a value
        # and propagates only where the body uses it (so ISERROR(param) works).
        values = tuple([a(row, ctx) for a in args])
        limits = ctx.limits
        ctx.steps += target.cost
        ctx.depth += 1
        ctx.eval_depth += target.height
        if (
            ctx.steps > limits.max_steps
            or ctx.depth > limits.max_call_depth
            or ctx.eval_depth > limits.max_eval_depth
        ):
            raise Abort
        try:
            return target.body(values, ctx)
        finally:
            ctx.depth -= 1
            ctx.eval_depth -= target.height

    return custom_call, height
