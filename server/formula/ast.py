"""The syntax tree: small frozen dataclasses, one per construct of the language.

Names are kept as written; the compiler resolves them (function names case-insensitively,
column names through the caller's name-to-id map, parameters within custom functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Number:
    """A number literal. Out-of-range literals are kept and evaluate to ``#LIMIT!``."""

    value: int | float


@dataclass(frozen=True, slots=True)
class Text:
    """A text literal (quotes removed, ``""`` unescaped)."""

    value: str


@dataclass(frozen=True, slots=True)
class Error:
    """An error literal such as ``#N/A`` (its code, upper case)."""

    code: str


@dataclass(frozen=True, slots=True)
class Bool:
    """``TRUE`` or ``FALSE``."""

    value: bool


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """``{Name}``: the current row's cell, or the whole column as an aggregate argument."""

    name: str


@dataclass(frozen=True, slots=True)
class Name:
    """A bare identifier not followed by ``(``: a parameter inside a custom function."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary:
    """``-x``, ``+x``, or the postfix percent ``x%`` (op ``"%"``: x / 100)."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right`` for ``+ - * / ^ & = <> < > <= >=``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Call:
    """``NAME(args...)``: a built-in or custom function call."""

    name: str
    args: tuple[Expr, ...]


Expr: TypeAlias = Number | Text | Error | Bool | ColumnRef | Name | Unary | Binary | Call
"""Any expression node."""
