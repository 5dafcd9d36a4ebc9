"""Spreadsheet criteria, as in ``COUNTIF({Cat}, ">=10")``, and how a cell is tested.

A criterion is a value or a text starting with a comparison operator:

* ``5``, ``TRUE``, ``"apple"``, ``"=apple"``: cells equal to it; text case-insensitively,
  with wildcards (``"a*"``, ``"?b"``, ``"~*"``); a number also matches text that spells it
  (``"5"``), as in a spreadsheet;
* ``">5"``, ``"<=2024-01-31"``, ``"<>apple"``: compared; numbers only with numbers, text
  only with text (ISO dates compare as text, in date order); ``<>`` matches everything not
  equal, blanks included;
* ``""`` (or a blank criterion): blank cells and empty text; ``"="``: blank cells only;
  ``"<>"``: cells that are not blank.

How it works: :func:`parse_criterion` reads the criterion once into a :class:`Criterion`;
:meth:`Criterion.matches` tests a cell with no parsing. Equality criteria without
wildcards also give a hashable :meth:`Criterion.key` equal to :func:`cell_key` of exactly
the cells they match, so callers can group a column once and answer by dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from server.formula.errors import Signal
from server.formula.functions.wildcard import Pattern, compile_pattern, fold, has_wildcards
from server.formula.values import ErrorValue, numbers_compare, parse_number, round15

_OPERATORS: Final = ("<=", ">=", "<>", "<", ">", "=")
_BLANK: Final = "blank"  # kind of a criterion about blanks


def cell_key(v: object) -> tuple[int, object] | None:
    """The equality key of a cell, or ``None`` (blanks, errors: never a keyed match)."""
    t = type(v)
    if t is int:
        return (0, v)
    if t is float:
        return (0, round15(v))  # type: ignore[arg-type]
    if t is str:
        n = parse_number(v)  # type: ignore[arg-type]
        if n is not None:
            return (0, n if type(n) is int else round15(n))
        return (1, fold(v))  # type: ignore[arg-type]
    if t is bool:
        return (2, v)
    return None


@dataclass(frozen=True, slots=True)
class Criterion:
    """A parsed criterion: operator, kind (``number``/``text``/``bool``/``blank``), value."""

    op: str
    kind: str
    value: object
    pattern: Pattern | None = None

    def key(self) -> tuple[int, object] | None:
        """The :func:`cell_key` of the cells an ``=`` criterion matches, if it has one."""
        if self.op != "=" or self.pattern is not None or self.kind == _BLANK:
            return None
        return cell_key(self.value)

    def cost(self, cell: object) -> int:
        """Work units for testing ``cell`` (more for a wildcard over long text)."""
        if self.pattern is not None and type(cell) is str:
            return 1 + self.pattern.cost(len(cell)) // 64
        return 1

    def matches(self, cell: object) -> bool:
        """Whether ``cell`` meets the criterion (error cells never do)."""
        op = self.op
        if self.kind == _BLANK:
            if op == "=":
                return cell is None or (self.value == "" and cell == "")
            return not (cell is None or cell == "")  # "<>"
        if op == "=":
            return self._equal(cell)
        if op == "<>":
            return type(cell) is not ErrorValue and not self._equal(cell)
        order = self._order(cell)
        if order is None:
            return False
        if op == "<":
            return order < 0
        if op == ">":
            return order > 0
        if op == "<=":
            return order <= 0
        return order >= 0

    def _equal(self, cell: object) -> bool:
        t = type(cell)
        if self.kind == "number":
            if t is str:
                n = parse_number(cell)  # type: ignore[arg-type]
                return n is not None and numbers_compare(n, self.value) == 0  # type: ignore[arg-type]
            return (t is int or t is float) and numbers_compare(cell, self.value) == 0  # type: ignore[arg-type]
        if self.kind == "bool":
            return t is bool and cell == self.value
        if t is not str:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(fold(cell))  # type: ignore[arg-type]
        return fold(cell) == self.value  # type: ignore[arg-type]

    def _order(self, cell: object) -> int | None:
        t = type(cell)
        if self.kind == "number":
            if t is int or t is float:
                return numbers_compare(cell, self.value)  # type: ignore[arg-type]
            return None
        if self.kind == "bool":
            return (int(cell) - int(self.value)) if t is bool else None  # type: ignore[call-overload]
        if t is not str:
            return None
        folded = fold(cell)  # type: ignore[arg-type]
        return (folded > self.value) - (folded < self.value)  # type: ignore[operator]


def parse_criterion(v: object) -> Criterion:
    """Read a criterion argument; an error value propagates."""
    t = type(v)
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    if v is None:
        return Criterion("=", _BLANK, "")
    if t is bool:
        return Criterion("=", "bool", v)
    if t is int or t is float:
        return Criterion("=", "number", v)
    text = str(v)
    op = next((o for o in _OPERATORS if text.startswith(o)), "")
    rest = text[len(op) :]
    if rest == "":
        if op in ("", "="):
            return Criterion("=", _BLANK, "" if op == "" else None)
        if op == "<>":
            return Criterion("<>", _BLANK, None)
        return Criterion(op, "text", "")  # "<" / ">" against empty text
    op = op or "="
    n = parse_number(rest)
    if n is not None:
        return Criterion(op, "number", n)
    upper = rest.strip().upper()
    if upper in ("TRUE", "FALSE"):
        return Criterion(op, "bool", upper == "TRUE")
    folded = fold(rest)
    if op in ("=", "<>") and has_wildcards(folded):
        return Criterion(op, "text", folded, compile_pattern(folded))
    return Criterion(op, "text", folded)
