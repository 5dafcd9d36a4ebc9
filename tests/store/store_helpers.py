"""A tenant store on a real SQLite file in ``tmp_path``, recording what it broadcasts."""

from __future__ import annotations

from pathlib import Path

from protocol.messages import Change
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, Op, UpdateCells
from server.store.schema import Durability
from server.store.tenant import TenantStore
from server.store.writer import BatchOutcome

TENANT = "storetenant0001"
TABLE = "t"


class Recorder:
    """``on_commit``: every call's changes, one list per commit and table."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Change]]] = []

    def __call__(self, tenant: str, table: str, changes: list[Change]) -> None:
        self.calls.append((table, changes))

    def versions(self, table: str = TABLE) -> list[int]:
        """Every version broadcast for ``table``, in broadcast order."""
        return [c.version for t, changes in self.calls if t == table for c in changes]


async def open_store(path: Path, recorder: Recorder | None = None) -> TenantStore:
    """Open the store of ``path`` (a tenant database file)."""
    return await TenantStore.open(
        TENANT,
        path,
        durability=Durability.PROCESS,
        on_commit=recorder if recorder is not None else Recorder(),
    )


async def make_table(store: TenantStore, rows: int = 0) -> BatchOutcome:
    """Create table ``t`` (text column ``a``), with rows ``r0``... when asked."""
    ops: list[Op] = [
        CreateTable(name="T", columns=[ColumnDef(id="a", name="A", type=ColumnType.TEXT)])
    ]
    if rows:
        ops.append(
            InsertRows(rows=[NewRow(id=f"r{i}", values={"a": f"v{i}"}) for i in range(rows)])
        )
    outcome = await store.apply(TABLE, "setup", "create", ops, "test")
    assert outcome.error is None, outcome.error
    return outcome


def insert(row: str, value: str = "x") -> list[Op]:
    """One batch inserting ``row``."""
    return [InsertRows(rows=[NewRow(id=row, values={"a": value})])]


def update(row: str, value: str) -> list[Op]:
    """One batch setting ``a`` of ``row``."""
    return [UpdateCells(row=row, values={"a": value})]


async def cells(store: TenantStore, table: str = TABLE) -> dict[str, object]:
    """Column ``a`` of every row, by row id, as the read connection sees it."""
    snap = await store.snapshot(table)
    assert snap is not None
    return {row.id: row.values.get("a") for row in snap.rows}
