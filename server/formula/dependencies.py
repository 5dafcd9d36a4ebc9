"""The dependency graph of one table's formula columns: recompute order and cycles.

How it works: the graph is a mapping from each formula column to the columns its formula
reads, split into ``row`` references (the same row's cell) and ``whole`` references (the
entire column, for aggregates and lookups) -- exactly :attr:`Formula.dependencies`.
Columns that are not keys are data columns. Everything here is iterative (Kahn's algorithm,
explicit stacks), so a table with thousands of chained formula columns cannot exhaust the
Python stack.

Custom functions cannot reference columns (their bodies see only their parameters), so a
formula's dependencies are exactly the columns written in it; no cycle can hide inside a
custom function.

Typical use by the table layer::

    graph = {col: f.dependencies for col, f in formulas.items()}
    check_no_cycle(graph, column, new_formula.dependencies)   # before accepting a formula
    order = recompute_order(graph)                            # full recompute, in order
    plan = plan_change(graph, {changed_column})               # after a cell edit
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from server.formula.errors import FormulaCycleError

C = TypeVar("C", bound=Hashable)


@dataclass(frozen=True, slots=True)
class ColumnRefs(Generic[C]):
    """The columns one formula reads: in the same row, and as whole columns."""

    row: frozenset[C] = frozenset()
    whole: frozenset[C] = frozenset()

    @property
    def all(self) -> frozenset[C]:
        """Every column read, either way."""
        return self.row | self.whole


@dataclass(frozen=True, slots=True)
class RecomputeOrder(Generic[C]):
    """Formula columns in an order where each comes after every column it reads, and the
    columns caught in (or depending on) a cycle, which should hold ``#CYCLE!``."""

    order: tuple[C, ...]
    cyclic: frozenset[C]


@dataclass(frozen=True, slots=True)
class RecomputePlan(Generic[C]):
    """What to recompute after cells of some columns changed, each tuple in dependency order:
    ``same_row``: only in the rows that changed; ``all_rows``: in every row."""

    same_row: tuple[C, ...]
    all_rows: tuple[C, ...]


def recompute_order(graph: Mapping[C, ColumnRefs[C]]) -> RecomputeOrder[C]:
    """Topological order of the formula columns of ``graph`` (stable: ties keep the graph's
    iteration order); columns that cannot be ordered are reported as ``cyclic``."""
    pending: dict[C, int] = {}
    readers: dict[C, list[C]] = {c: [] for c in graph}
    for column, refs in graph.items():
        deps = {d for d in refs.all if d in graph}
        pending[column] = len(deps)
        for d in deps:
            readers[d].append(column)
    ready = deque(c for c in graph if pending[c] == 0)
    order: list[C] = []
    while ready:
        column = ready.popleft()
        order.append(column)
        for reader in readers[column]:
            pending[reader] -= 1
            if pending[reader] == 0:
                ready.append(reader)
    done = set(order)
    return RecomputeOrder(tuple(order), frozenset(c for c in graph if c not in done))


def find_cycle(
    graph: Mapping[C, ColumnRefs[C]], column: C, refs: ColumnRefs[C]
) -> tuple[C, ...] | None:
    """The cycle that giving ``column`` a formula reading ``refs`` would create, as a path
    ``(column, ..., column)``, or ``None``. Self-reference is the path ``(column, column)``."""
    # A cycle exists iff `column` is reachable from one of the new refs through the graph
    # with column's own (old) formula ignored; search depth-first with an explicit stack.
    parent: dict[C, C] = {}
    stack: list[C] = []
    for start in sorted_refs(refs.all):
        if start == column:
            return (column, column)
        if start not in parent:
            parent[start] = column
            stack.append(start)
    while stack:
        node = stack.pop()
        node_refs = graph.get(node) if node != column else None
        if node_refs is None:
            continue
        for nxt in sorted_refs(node_refs.all):
            if nxt == column:
                return _path(column, node, parent)
            if nxt not in parent:
                parent[nxt] = node
                stack.append(nxt)
    return None


def _path(column: C, last: C, parent: Mapping[C, C]) -> tuple[C, ...]:
    """``column -> ... -> last -> column`` following parent links back from ``last``."""
    chain = [last]
    while chain[-1] != column:
        chain.append(parent[chain[-1]])
    chain.reverse()  # column, first ref, ..., last
    return (*chain, column)


def sorted_refs(refs: Iterable[C]) -> list[C]:
    """``refs`` in a deterministic order (sorted when comparable), for stable messages."""
    items = list(refs)
    try:
        return sorted(items)  # type: ignore[type-var]
    except TypeError:
        return items


def check_no_cycle(graph: Mapping[C, ColumnRefs[C]], column: C, refs: ColumnRefs[C]) -> None:
    """Raise :class:`FormulaCycleError` if ``column`` reading ``refs`` would make a cycle."""
    cycle = find_cycle(graph, column, refs)
    if cycle is not None:
        raise FormulaCycleError(cycle)


def plan_change(graph: Mapping[C, ColumnRefs[C]], changed: Iterable[C]) -> RecomputePlan[C]:
    """Which formula columns to recompute after cells of ``changed`` columns changed.

    A formula reading a changed column in its row needs recomputing in the changed rows
    only; one reading it as a whole column (``SUM({X})``) needs every row, and so does
    everything downstream of it. After inserting or deleting rows, pass every column of
    the table (and compute all formulas of a new row). Cyclic columns are left out.
    """
    ordered = recompute_order(graph)
    touched = set(changed)
    same_row: set[C] = set()
    all_rows: set[C] = set()
    dirty = set(touched)  # changed in some rows: touched, same_row and all_rows together
    for column in ordered.order:
        refs = graph[column]
        if not refs.whole.isdisjoint(dirty) or not refs.row.isdisjoint(all_rows):
            all_rows.add(column)
            dirty.add(column)
        elif not refs.row.isdisjoint(dirty):
            same_row.add(column)
            dirty.add(column)
    return RecomputePlan(
        tuple(c for c in ordered.order if c in same_row),
        tuple(c for c in ordered.order if c in all_rows),
    )
