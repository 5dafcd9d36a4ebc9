"""The evaluation context: what a formula may consult beyond its row, and its budgets.

How it works: the caller makes one :class:`EvalContext` per recompute pass over a table
snapshot and passes it to every :meth:`Formula.evaluate` of that pass. It holds

* ``columns``: whole-column values for aggregates and lookups (a mapping or a callable),
  with per-context caches, so ``SUM({Qty})`` over 100,000 rows scans the column once per
  pass, not once per row, and ``XLOOKUP`` builds its index once;
* ``functions``: the tenant's custom functions;
* ``now``: the time ``NOW()`` and ``TODAY()`` return (the engine never reads a clock).

Conditional aggregates and wildcard or approximate lookups keep their groupings, sorted
copies and answers in ``memo`` for the context's lifetime, and charge every extra scan to
``scanned`` (bounded by ``Limits.max_scan_cells``).

It also carries the per-evaluation budget counters, reset by every ``evaluate`` call. So a
context is a snapshot and a scratchpad: do not keep it across data changes, and do not share
it between threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias

from server.formula.errors import Abort, Signal
from server.formula.limits import DEFAULT_LIMITS, Limits
from server.formula.values import REF, CellValue, ErrorValue, round15

ColumnId: TypeAlias = str
"""A column's id as the table layer knows it (any string; e.g. its NewType id)."""

Closure: TypeAlias = Callable[[Any, "EvalContext"], Any]
"""A compiled expression: ``(row, context) -> value``. Inside a custom function's body the
"row" is the tuple of argument values."""

ColumnSource: TypeAlias = (
    Mapping[ColumnId, Sequence[CellValue]] | Callable[[ColumnId], Sequence[CellValue] | None]
)
"""Whole-column values by column id: a mapping, or a callable returning ``None`` if unknown."""


@dataclass(frozen=True, slots=True)
class CompiledFunction:
    """A custom function ready to call: its body closure and static costs."""

    name: str
    arity: int
    body: Closure
    cost: int  # syntax nodes in the body: the steps charged per call
    height: int  # syntax-tree height of the body: the evaluation depth used per call


class FunctionLookup(Protocol):
    """Where the evaluator finds custom functions (a ``FunctionRegistry``)."""

    def lookup(self, name: str) -> CompiledFunction | None:
        """The compiled function called ``name`` (upper case), or ``None``."""
        ...


@dataclass(slots=True)
class ColumnStats:
    """One scan of a column: what SUM/AVERAGE/MIN/MAX/COUNT/COUNTA need, its values and
    numbers, and a cache (``derived``) for figures other aggregates compute once per
    context from a column given alone (the sorted numbers for MEDIAN, the variance...)."""

    total: float | int
    count: int  # numbers (booleans and numeric text in cells are not numbers here)
    counta: int  # non-blank cells
    low: float | int | None
    high: float | int | None
    error: ErrorValue | None  # the first error value in the column, if any
    values: Sequence[CellValue] = ()
    numbers: list[float | int] = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scan(cls, values: Sequence[CellValue]) -> ColumnStats:
        """Scan ``values`` once."""
        numbers = [v for v in values if type(v) is int or type(v) is float]
        error = next((v for v in values if type(v) is ErrorValue), None)
        counta = sum(1 for v in values if v is not None and v != "")
        return cls(
            total=sum(numbers),
            count=len(numbers),
            counta=counta,
            low=min(numbers) if numbers else None,
            high=max(numbers) if numbers else None,
            error=error,
            values=values,
            numbers=numbers,
        )

    def cached(self, key: str, compute: Callable[[list[float | int]], Any]) -> Any:
        """``compute(self.numbers)``, computed once per context under ``key``."""
        if key not in self.derived:
            self.derived[key] = compute(self.numbers)
        return self.derived[key]


class ColumnView:
    """A whole column for lookups: its values and a lazily built exact-match index."""

    __slots__ = ("_index", "values")

    def __init__(self, values: Sequence[CellValue]) -> None:
        self.values = values
        self._index: dict[tuple[int, object], int] | None = None

    def position(self, needle: CellValue) -> int | None:
        """0-based position of the first cell equal to ``needle`` (text case-insensitive)."""
        if self._index is None:
            index: dict[tuple[int, object], int] = {}
            for i, v in enumerate(self.values):
                key = lookup_key(v)
                if key is not None and key not in index:
                    index[key] = i
            self._index = index
        key = lookup_key(needle)
        return None if key is None else self._index.get(key)


def lookup_key(v: object) -> tuple[int, object] | None:
    """Hashable match key; the tag keeps TRUE apart from 1 (Python says True == 1)."""
    t = type(v)
    if t is int:
        return (0, v)
    if t is float:
        return (0, round15(v))  # type: ignore[arg-type]  # equal at 15 significant digits
    if t is str:
        return (1, v.casefold())  # type: ignore[attr-defined]
    if t is bool:
        return (2, v)
    return None  # blanks and errors never match


class EvalContext:
    """Columns, custom functions and time for one recompute pass (see module docstring)."""

    __slots__ = (
        "_columns",
        "_lookups",
        "_stats",
        "depth",
        "eval_depth",
        "functions",
        "limits",
        "memo",
        "now",
        "scanned",
        "steps",
    )

    def __init__(
        self,
        *,
        columns: ColumnSource | None = None,
        functions: FunctionLookup | None = None,
        now: datetime | None = None,
    ) -> None:
        self._columns = columns
        self.functions = functions
        self.now = now
        self._stats: dict[ColumnId, ColumnStats] = {}
        self._lookups: dict[ColumnId, ColumnView] = {}
        #: results and indexes of conditional aggregates and wildcard lookups, by a key the
        #: function builds from its name, columns and criteria (one pass: one snapshot)
        self.memo: dict[tuple[object, ...], Any] = {}
        #: cells scanned for ``memo`` entries so far, bounded by ``Limits.max_scan_cells``
        self.scanned = 0
        # Budget counters; Formula.evaluate resets them for each cell.
        self.limits: Limits = DEFAULT_LIMITS
        self.steps = 0
        self.depth = 0
        self.eval_depth = 0

    def column_values(self, column: ColumnId) -> Sequence[CellValue]:
        """The whole column, or ``#REF!`` if the source does not know it."""
        source = self._columns
        values: Sequence[CellValue] | None
        if source is None:
            values = None
        elif isinstance(source, Mapping):
            values = source.get(column)
        else:
            values = source(column)
        if values is None:
            raise Signal(REF)
        return values

    def charge_scan(self, cells: int) -> None:
        """Account for scanning ``cells`` more cells in this context; a scan beyond
        ``Limits.max_scan_cells`` aborts the evaluation (``#LIMIT!``) before it starts."""
        self.scanned += cells
        if self.scanned > self.limits.max_scan_cells:
            raise Abort

    def charge_steps(self, steps: int) -> None:
        """Charge ``steps`` to the current cell's budget (``#LIMIT!`` beyond it)."""
        self.steps += steps
        if self.steps > self.limits.max_steps:
            raise Abort

    def column_stats(self, column: ColumnId) -> ColumnStats:
        """Aggregate figures of a column, computed once per context."""
        stats = self._stats.get(column)
        if stats is None:
            stats = self._stats[column] = ColumnStats.scan(self.column_values(column))
        return stats

    def column_view(self, column: ColumnId) -> ColumnView:
        """A column prepared for lookups, built once per context."""
        view = self._lookups.get(column)
        if view is None:
            view = self._lookups[column] = ColumnView(self.column_values(column))
        return view
