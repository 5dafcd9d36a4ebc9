"""Formula columns in the tenant store: recompute inside the batch's transaction, and the
tenant's custom functions.

How it works
------------
:class:`FormulaRuntime` supplies the two hooks of the store's writer: ``check`` (the op
engine's ``check_formula``, see :mod:`server.engine.formulas`) and ``recompute``, which
``commit_group`` runs in the writer thread right after a batch's steps, inside the batch's
savepoint. ``recompute`` works out exactly what the batch made stale:

* ``update_cells`` of column X in row R: the formulas reading X in their row, in R only;
  the formulas reading X as a whole column (``SUM({X})``, lookups), and everything
  downstream of them, in every row (:func:`server.formula.plan_change`);
* ``insert_rows``: every formula of the new rows, plus the aggregate-dependent columns
  in every row; ``delete_rows`` and ``move_row``: the aggregate-dependent columns
  (lookups depend on row order);
* a new or changed formula: its whole column and everything downstream.

It evaluates them in dependency order with ONE ``EvalContext`` for the pass (whole columns
are scanned once), writes the values that changed into the formula columns' SQL columns,
and returns one server-made ``update_cells`` op per row whose computed cells changed; the
writer appends them to the change, so every subscriber, replica and resuming client sees
computed values as ordinary cell values. A table without formula columns costs one loop
over its columns per batch.

Computed values on the wire and in storage: numbers, text and null as themselves;
booleans as the text ``TRUE``/``FALSE``; error values as their code text (``"#DIV/0!"``).
When a formula reads another formula column, those texts are read back as the boolean or
the error value.

Budget: a pass spends at most ``pass_steps`` evaluation steps (summed over its cells;
each cell is also bounded by ``Limits.max_steps``). Cells left when the budget is spent get
``#LIMIT!`` without being evaluated, so one pass over a huge table or a hostile formula
cannot hold the writer (and the tenant's other batches) for long.

Custom functions live in the tenant database (``_ht_functions``) and in a per-connection
:class:`~server.formula.FunctionRegistry` cache, loaded on first use in the writer thread
and updated by :meth:`FormulaRuntime.define` / :meth:`FormulaRuntime.drop`, which also run
in the writer thread (``TenantStore.run_exclusive``); a commit by another hub process
(``PRAGMA data_version`` moved) makes it load again, so the cache cannot go stale.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from protocol.limits import MAX_ABS_NUMBER, MAX_CELL_CHARS
from protocol.ops import ColumnType, InsertRows, Op, SetFormula, UpdateCells
from server.engine.batch import (
    DeleteRowsStep,
    FormulaChanged,
    FormulaRewritten,
    InsertRowsStep,
    MoveRowStep,
    Plan,
    UpdateRowStep,
)
from server.engine.catalog import ColumnState, TableState
from server.engine.cells import from_stored
from server.engine.formulas import (
    DEFAULT_CACHE,
    FormulaCache,
    graph_of,
    has_formulas,
    make_check,
)
from server.formula import (
    CYCLE,
    ERRORS,
    LIMIT,
    NUM,
    VALUE,
    CellValue,
    ErrorValue,
    EvalContext,
    FormulaError,
    plan_change,
    recompute_order,
)
from server.store.catalog import data_version

if TYPE_CHECKING:  # the compiler loads at the first formula (server/formula/__init__.py)
    from server.formula import CustomFunction, Formula, FunctionRegistry

PASS_STEPS: Final = 5_000_000
"""Default evaluation steps one recompute pass may spend (about 1-3 s of CPU at worst)."""

_IN_CLAUSE: Final = 500
"""Row ids per ``WHERE _id IN (...)`` query."""

_TRUE: Final = "TRUE"
_FALSE: Final = "FALSE"


def to_wire(value: CellValue) -> Any:
    """A computed value as stored and broadcast: error values and booleans become text."""
    t = type(value)
    if value is None or t is int:
        return value
    if t is float:
        # The wire bounds numbers (protocol.limits.MAX_ABS_NUMBER); the engine computes up
        # to a double's range, so a result between the two is stored as #NUM!.
        return value if -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER else NUM.code  # type: ignore[operator]
    if t is str:
        return value if len(value) <= MAX_CELL_CHARS else LIMIT.code  # type: ignore[arg-type]
    if t is bool:
        return _TRUE if value else _FALSE
    if t is ErrorValue:
        return value.code  # type: ignore[union-attr]
    return VALUE.code  # pragma: no cover - the engine returns only the types above


def formula_input(stored: Any) -> CellValue:
    """A formula column's stored value as another formula reads it."""
    if type(stored) is str:
        if stored == _TRUE:
            return True
        if stored == _FALSE:
            return False
        return ERRORS.get(stored, stored)
    return stored  # type: ignore[no-any-return]


def _reader(column: ColumnState) -> Callable[[Any], CellValue]:
    if column.type is ColumnType.FORMULA:
        return formula_input
    kind = column.type
    return lambda v: from_stored(kind, v)


class FormulaRuntime:
    """The formula layer of the tenant stores: the writer hooks and custom functions."""

    def __init__(
        self,
        cache: FormulaCache = DEFAULT_CACHE,
        *,
        pass_steps: int = PASS_STEPS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None),
    ) -> None:
        self.cache = cache
        self.limits = cache.limits
        self.pass_steps = pass_steps
        self.clock = clock
        self.check = make_check(cache)
        # sqlite3 connections take no weak references: key by id() and keep the connection
        # in the value, so the id cannot be reused while the entry exists.
        self._registries: dict[int, tuple[sqlite3.Connection, int, FunctionRegistry]] = {}
        self._lock = threading.Lock()
        self.passes = 0
        self.cells = 0

    # --- custom functions (writer thread) -------------------------------------------------

    def registry(self, conn: sqlite3.Connection) -> FunctionRegistry:
        """The tenant's custom functions for its writer connection ``conn``."""
        # Another hub process may have defined or dropped a function in this database: its
        # commit moves ``data_version`` (this connection's own writes do not).
        version = data_version(conn)
        entry = self._registries.get(id(conn))
        if entry is not None and entry[0] is conn and entry[1] == version:
            return entry[2]
        from server.formula import FunctionRegistry

        registry = FunctionRegistry(self.limits)
        for (text,) in conn.execute("SELECT definition FROM _ht_functions ORDER BY name"):
            try:
                registry.define(text)
            except FormulaError:  # stored under looser limits: skip it rather than fail
                continue
        with self._lock:
            if len(self._registries) >= 4096:
                self._registries.clear()  # reloaded from the database on next use
            self._registries[id(conn)] = (conn, version, registry)
        return registry

    def forget(self, conn: sqlite3.Connection) -> None:
        """Drop the cached registry of ``conn`` (reloaded from the database on next use)."""
        with self._lock:
            self._registries.pop(id(conn), None)

    def define(self, conn: sqlite3.Connection, definition: str) -> CustomFunction:
        """Define or replace a function and store it (own transaction). Raises
        ``FormulaError`` for a bad definition, leaving everything unchanged."""
        registry = self.registry(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            function = registry.define(definition)
            conn.execute(
                "INSERT INTO _ht_functions (name, definition) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET definition=excluded.definition",
                (function.name, definition),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.forget(conn)
            raise
        return function

    def drop(self, conn: sqlite3.Connection, name: str) -> bool:
        """Forget a function; whether it existed."""
        registry = self.registry(conn)
        if name not in registry:
            return False
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM _ht_functions WHERE name=?", (name.upper(),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.forget(conn)
            raise
        registry.remove(name)
        return True

    def functions(self, conn: sqlite3.Connection) -> list[CustomFunction]:
        """Every function of the tenant, by name."""
        return sorted(self.registry(conn), key=lambda f: f.name)

    def reaching(
        self, conn: sqlite3.Connection, tables: Iterable[TableState], names: Iterable[str]
    ) -> dict[str, list[str]]:
        """Formula columns (by table id) whose formula calls, directly or through other
        functions, any of ``names``: they need recomputing when those change."""
        registry = self.registry(conn)
        wanted = {n.upper() for n in names}
        out: dict[str, list[str]] = {}
        for table in tables:
            if not has_formulas(table):
                continue
            for cid, formula in self.cache.formulas(table).items():
                if formula is None or not formula.custom_calls:
                    continue
                calls = {c.upper() for c in formula.custom_calls}
                if (calls & wanted) or (registry.reachable(calls) & wanted):
                    out.setdefault(table.id, []).append(cid)
        return out

    # --- recompute (writer thread, inside the batch's savepoint) ---------------------------

    def recompute(
        self, conn: sqlite3.Connection, table: TableState, plan: Plan, applied: list[Op]
    ) -> list[Op]:
        """The ``recompute`` hook: recompute what ``plan`` made stale; the ops to append."""
        if not has_formulas(table):
            return []
        formulas = self.cache.formulas(table)
        graph = graph_of(formulas)
        ordered = recompute_order(graph)
        extra: list[Op] = []
        full: set[str] = set()
        rows: dict[str, set[str]] = {}
        aggregate: frozenset[str] | None = None
        sql_to_id = {c.sql: c.id for c in table.columns}
        rewritten: dict[str, None] = {}

        def aggregates() -> frozenset[str]:
            nonlocal aggregate
            if aggregate is None:
                aggregate = frozenset(plan_change(graph, sql_to_id.values()).all_rows)
            return aggregate

        for step in plan.steps:
            if isinstance(step, UpdateRowStep):
                changed = {sql_to_id[s] for s, _ in step.cells if s in sql_to_id}
                change = plan_change(graph, changed)
                if change.same_row:
                    rows.setdefault(step.op.row, set()).update(change.same_row)
                full.update(change.all_rows)
            elif isinstance(step, InsertRowsStep):
                done = applied[step.index]
                if isinstance(done, InsertRows):
                    for row in done.rows:
                        if row.id is not None:
                            rows[row.id] = set(graph)
                full.update(aggregates())
            elif isinstance(step, DeleteRowsStep):
                for row_id in step.op.rows:
                    rows.pop(row_id, None)
                full.update(aggregates())
            elif isinstance(step, MoveRowStep):
                full.update(aggregates())
            elif isinstance(step, FormulaChanged):
                if step.column.id in graph:
                    change = plan_change(graph, {step.column.id})
                    full.add(step.column.id)
                    full.update(change.same_row, change.all_rows)
            elif isinstance(step, FormulaRewritten):
                rewritten[step.column.id] = None
        for cid in rewritten:
            column = table.column(cid)
            if column is not None and column.formula is not None:
                extra.append(SetFormula(column=cid, formula=column.formula))
        if full or rows:
            extra.extend(
                self._evaluate(conn, table, formulas, ordered.order, ordered.cyclic, full, rows)
            )
        return extra

    def _evaluate(
        self,
        conn: sqlite3.Connection,
        table: TableState,
        formulas: Mapping[str, Formula | None],
        order: Sequence[str],
        cyclic: frozenset[str],
        full: set[str],
        rows: dict[str, set[str]],
    ) -> list[Op]:
        pass_ = _Pass(conn, table, full_scan=bool(full), row_ids=list(rows))
        ctx = EvalContext(
            columns=pass_.whole_column, functions=self.registry(conn), now=self.clock()
        )
        spent = 0
        budget = self.pass_steps
        updates: dict[str, dict[str, Any]] = {}
        evaluated = 0
        for cid in (*order, *sorted(cyclic)):
            if cid in full:
                positions: Iterable[int] = range(len(pass_.ids))
            else:
                positions = [
                    pass_.position[r]
                    for r, cols in rows.items()
                    if cid in cols and r in pass_.position
                ]
            formula = formulas.get(cid)
            column = table.column(cid)
            if column is None:
                continue
            refs = tuple(formula.row_refs) if formula is not None else ()
            for ref in refs:
                pass_.load(ref)
            values = pass_.load(cid)
            raw = pass_.raw(cid)
            written: list[tuple[Any, str]] = []
            for i in positions:
                if cid in cyclic:
                    value: CellValue = CYCLE
                elif formula is None:
                    value = VALUE
                elif spent > budget:
                    value = LIMIT
                else:
                    row = {ref: pass_.values[ref][i] for ref in refs}
                    value = formula.evaluate(row, ctx)
                    spent += ctx.steps
                evaluated += 1
                wire = to_wire(value)
                old = raw[i]
                values[i] = formula_input(wire)
                if wire == old and type(wire) is type(old):
                    continue
                raw[i] = wire
                row_id = pass_.ids[i]
                written.append((wire, row_id))
                updates.setdefault(row_id, {})[cid] = wire
            if written:
                conn.executemany(
                    f"UPDATE {table.sql} SET {column.sql}=? WHERE _id=?",  # noqa: S608
                    written,
                )
        self.passes += 1
        self.cells += evaluated
        return [UpdateCells(row=row_id, values=cells) for row_id, cells in updates.items()]


class _Pass:
    """The rows one recompute pass reads: every row in table order (``full_scan``) or only
    ``row_ids``; values converted per column on first use; whole columns for aggregates."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        table: TableState,
        *,
        full_scan: bool,
        row_ids: list[str],
    ) -> None:
        self.conn = conn
        self.table = table
        self.full_scan = full_scan
        self.index = {c.id: i + 1 for i, c in enumerate(table.columns)}
        select = "SELECT _id" + "".join(f", {c.sql}" for c in table.columns)
        select += f" FROM {table.sql}"  # generated names only
        fetched: list[tuple[Any, ...]] = []
        if full_scan:
            fetched = conn.execute(select + " ORDER BY _ord").fetchall()
        else:
            for start in range(0, len(row_ids), _IN_CLAUSE):
                chunk = row_ids[start : start + _IN_CLAUSE]
                marks = ",".join("?" * len(chunk))
                fetched.extend(conn.execute(f"{select} WHERE _id IN ({marks})", chunk))
        self.fetched = fetched
        self.ids: list[str] = [str(t[0]) for t in fetched]
        self.position = {rid: i for i, rid in enumerate(self.ids)}
        self.values: dict[str, list[CellValue]] = {}
        self._raw: dict[str, list[Any]] = {}
        self._whole: dict[str, list[CellValue]] = {}

    def raw(self, cid: str) -> list[Any]:
        """Stored values of column ``cid`` for the pass's rows (updated as written)."""
        found = self._raw.get(cid)
        if found is None:
            j = self.index[cid]
            found = self._raw[cid] = [t[j] for t in self.fetched]
        return found

    def load(self, cid: str) -> list[CellValue]:
        """Engine values of column ``cid`` for the pass's rows (blank if no such column)."""
        found = self.values.get(cid)
        if found is None:
            column = self.table.column(cid)
            if column is None:
                found = [None] * len(self.ids)
            else:
                read = _reader(column)
                found = [read(v) if v is not None else None for v in self.raw(cid)]
            self.values[cid] = found
        return found

    def whole_column(self, cid: str) -> Sequence[CellValue] | None:
        """Every value of column ``cid`` in table order, or None if it does not exist."""
        column = self.table.column(cid)
        if column is None:
            return None
        if self.full_scan:
            return self.load(cid)
        found = self._whole.get(cid)
        if found is None:
            read = _reader(column)
            overlay = self.values.get(cid)
            found = []
            for row_id, stored in self.conn.execute(
                f"SELECT _id, {column.sql} FROM {self.table.sql} ORDER BY _ord"  # noqa: S608
            ):
                i = self.position.get(row_id)
                if overlay is not None and i is not None:
                    found.append(overlay[i])
                else:
                    found.append(read(stored) if stored is not None else None)
            self._whole[cid] = found
        return found
