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
  references and arrive as :class:`ColumnView` (lookups).
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
        volatile=volatile,
    )
