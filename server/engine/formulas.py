"""Formula columns in tables (pure): compiling, checking when set, and renames.

How it works: a formula column stores its formula as the text the user wrote, with column
references by *name* (``{Unit price} * {Qty}``). It is compiled against the table's current
name -> id map; compiled formulas are cached by (text, name map), so a table's formulas are
compiled once and shared by every batch (and every tenant writing the same formula) until
the text or the column names change. Compiled formulas are immutable: all evaluation state
lives in the ``EvalContext``, so sharing them between writer threads is safe.

* :func:`check_formula` is the op engine's ``check_formula`` hook: it refuses, with
  ``BatchError("formula_error", ..., op_index)``, a formula that does not compile (syntax,
  length, depth, argument counts), names a column that does not exist (this includes a
  column dropped while a formula still reads it), reads its own column, or would close a
  reference cycle through other formula columns.
* Renames are handled in :mod:`server.engine.formula_renames` (formula text is rewritten).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from protocol.ops import ColumnType
from server.engine.batch import BatchError, FormulaCheck
from server.engine.catalog import ColumnState, TableState
from server.formula import ColumnRefs, FormulaSyntaxError, find_cycle
from server.formula.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # the compiler loads at the first formula (server/formula/__init__.py)
    from server.formula import Formula

NamesKey = tuple[tuple[str, str], ...]
"""A table's (name, id) pairs in column order: part of a compiled formula's cache key."""


class FormulaCache:
    """Compiled formulas by (text, name map). Thread-safe; bounded (cleared when full)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, max_entries: int = 4096) -> None:
        self.limits = limits
        self.max_entries = max_entries
        self._compiled: dict[tuple[str, NamesKey], Formula] = {}
        self._lock = threading.Lock()

    def compile(self, table: TableState, text: str) -> Formula:
        """``text`` compiled against ``table``'s columns; raises ``FormulaSyntaxError``."""
        names = names_key(table)
        key = (text, names)
        found = self._compiled.get(key)
        if found is not None:
            return found
        from server.formula import compile_formula

        formula = compile_formula(text, columns=dict(names), limits=self.limits)
        with self._lock:
            if len(self._compiled) >= self.max_entries:
                self._compiled.clear()  # rare; recompiling is cheap next to a full table pass
            self._compiled[key] = formula
        return formula

    def formulas(self, table: TableState) -> dict[str, Formula | None]:
        """Every formula column of ``table`` compiled (``None`` if its stored text no longer
        compiles, which checks at set time prevent), in column order."""
        out: dict[str, Formula | None] = {}
        for column in table.columns:
            if column.type is ColumnType.FORMULA and column.formula is not None:
                try:
                    out[column.id] = self.compile(table, column.formula)
                except FormulaSyntaxError:
                    out[column.id] = None
        return out


def names_key(table: TableState) -> NamesKey:
    """The (name, id) pairs of ``table``'s columns."""
    return tuple((c.name, c.id) for c in table.columns)


def has_formulas(table: TableState) -> bool:
    """Whether ``table`` has any formula column (the hot-path test: usually False)."""
    return any(column.type is ColumnType.FORMULA for column in table.columns)


def graph_of(formulas: Mapping[str, Formula | None]) -> dict[str, ColumnRefs[str]]:
    """The dependency graph of compiled formula columns (uncompilable ones read nothing)."""
    return {cid: f.dependencies if f is not None else ColumnRefs() for cid, f in formulas.items()}


DEFAULT_CACHE: Final = FormulaCache()
"""The process-wide cache used by the hooks the hub installs."""


def make_check(cache: FormulaCache = DEFAULT_CACHE) -> FormulaCheck:
    """A ``check_formula`` hook for :func:`server.engine.batch.plan_batch` using ``cache``."""

    def check(table: TableState, column: ColumnState, index: int) -> None:
        check_formula(table, column, index, cache)

    return check


def check_formula(
    table: TableState, column: ColumnState, index: int, cache: FormulaCache = DEFAULT_CACHE
) -> None:
    """Refuse ``column``'s formula unless it compiles, names only existing columns other
    than itself, and closes no cycle. Raises ``BatchError("formula_error")``."""
    if column.formula is None:
        raise BatchError("formula_error", f"column {column.name!r} has no formula", index)
    try:
        formula = cache.compile(table, column.formula)
    except FormulaSyntaxError as exc:
        raise BatchError("formula_error", f"formula of {column.name!r}: {exc}", index) from None
    if formula.unknown_columns:
        missing = ", ".join(sorted(repr(n) for n in formula.unknown_columns))
        raise BatchError(
            "formula_error", f"formula of {column.name!r} reads no such column: {missing}", index
        )
    others = {cid: f for cid, f in cache.formulas(table).items() if cid != column.id}
    cycle = find_cycle(graph_of(others), column.id, formula.dependencies)
    if cycle is not None:
        names = {c.id: c.name for c in table.columns}
        path = " -> ".join(repr(names.get(c, c)) for c in cycle)
        what = "reads itself" if len(cycle) == 2 else f"makes a cycle: {path}"
        raise BatchError("formula_error", f"formula of {column.name!r} {what}", index)
