"""How a built-in function is described to the compiler.

Four calling conventions, chosen per function:

* ``eager``: arguments are evaluated first; an error value in any argument propagates
  without the function running. ``fn(ctx, *values)``.
* ``sees_errors``: eager, but error arguments arrive as :class:`ErrorValue` objects
  (``ISERROR``, ``ISNUMBER``, ``COUNT``...). ``fn(ctx, *values)``.
* ``lazy``: the function gets the argument closures and evaluates what it needs
  (``IF``, ``IFERROR``, ``SWITCH``). ``fn(row, ctx, closures)``.
* whole-column arguments: ``aggregate`` functions turn any bare ``{Column}`` argument into
  the column's :class:`ColumnStats`; ``column_params`` positions *must* be bare column
  references and arrive as :class:`ColumnView` (lookups); ``range_params`` positions take
  a whole column as a :class:`ColumnView` when given a bare ``{Column}`` and a scalar
  otherwise (``NETWORKDAYS`` holidays); ``stats_params`` likewise but as
  :class:`ColumnStats` (``LARGE``, ``RANK``);
* ``arg_parity``: the argument count must be even (0) or odd (1): pairs like ``IFS``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

CallKind = Literal["eager", "sees_errors", "lazy"]

MAX_VARIADIC = 255
"""Most arguments any variadic function accepts (Excel's limit)."""


@dataclass(frozen=True, slots=True)
class Builtin:
    """One built-in function: its implementation, arity, convention and documentation."""

    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int
    summary: str
    kind: CallKind = "eager"
    aggregate: bool = False
    column_params: frozenset[int] = frozenset()
    range_params: frozenset[int] = frozenset()
    stats_params: frozenset[int] = frozenset()
    arg_parity: int | None = None
    volatile: bool = False
    family: str = ""


def builtin(
    name: str,
    fn: Callable[..., Any],
    min_args: int,
    max_args: int | None,
    summary: str,
    *,
    kind: CallKind = "eager",
    aggregate: bool = False,
    column_params: tuple[int, ...] = (),
    range_params: tuple[int, ...] = (),
    stats_params: tuple[int, ...] = (),
    arg_parity: int | None = None,
    volatile: bool = False,
) -> Builtin:
    """Describe a built-in; ``max_args=None`` means variadic (up to ``MAX_VARIADIC``)."""
    return Builtin(
        name=name,
        fn=fn,
        min_args=min_args,
        max_args=MAX_VARIADIC if max_args is None else max_args,
        summary=summary,
        kind=kind,
        aggregate=aggregate,
        column_params=frozenset(column_params),
        range_params=frozenset(range_params),
        stats_params=frozenset(stats_params),
        arg_parity=arg_parity,
        volatile=volatile,
    )
