"""The tenant catalog: tables and columns as immutable values.

The store's single writer derives a new :class:`TableState` from the old one for every
batch and swaps it in only after the transaction commits, so readers on the event loop
never see a half-applied schema. SQL names (``t_<n>``, ``c_<n>``) are allocated from a
tenant-wide counter: user-facing ids and names never reach SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import msgspec

from protocol.ops import ColumnDef, ColumnType


@dataclass(frozen=True, slots=True)
class ColumnState:
    """A live column: wire id, name, type, SQL name, and formula for formula columns."""

    id: str
    name: str
    type: ColumnType
    sql: str
    formula: str | None = None

    def to_def(self) -> ColumnDef:
        """The column as the wire describes it."""
        return ColumnDef(id=self.id, name=self.name, type=self.type, formula=self.formula)


@dataclass(frozen=True, slots=True)
class TableState:
    """A table at one version. ``sql`` is its SQLite table name."""

    id: str
    name: str
    sql: str
    version: int
    columns: tuple[ColumnState, ...] = ()
    dropped: bool = False
    _by_id: dict[str, ColumnState] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self._by_id:
            self._by_id.update({c.id: c for c in self.columns})

    def column(self, column_id: str) -> ColumnState | None:
        """The column with this id, if it exists."""
        return self._by_id.get(column_id)

    def column_named(self, name: str) -> ColumnState | None:
        """The column with this name, if it exists."""
        for col in self.columns:
            if col.name == name:
                return col
        return None

    def bumped(self) -> TableState:
        """The same table one version later (the hot path: no dataclasses.replace)."""
        return TableState(
            self.id, self.name, self.sql, self.version + 1, self.columns, self.dropped, self._by_id
        )

    def evolve(self, **changes: object) -> TableState:
        """A copy with ``changes`` applied."""
        if "columns" not in changes:
            # Same columns: share the index (every data batch bumps only the version).
            return replace(self, _by_id=self._by_id, **changes)  # type: ignore[arg-type]
        return replace(self, _by_id={}, **changes)  # type: ignore[arg-type]


class _StoredColumn(msgspec.Struct, array_like=True):
    id: str
    name: str
    type: str
    sql: str
    formula: str | None = None


_columns_encoder = msgspec.json.Encoder()
_columns_decoder = msgspec.json.Decoder(list[_StoredColumn])


def encode_columns(columns: tuple[ColumnState, ...]) -> bytes:
    """Columns as stored in the tenant database's ``_ht_tables`` row."""
    return _columns_encoder.encode(
        [_StoredColumn(c.id, c.name, c.type.value, c.sql, c.formula) for c in columns]
    )


def decode_columns(data: bytes | str) -> tuple[ColumnState, ...]:
    """Inverse of :func:`encode_columns`."""
    if isinstance(data, str):
        data = data.encode()
    return tuple(
        ColumnState(c.id, c.name, ColumnType(c.type), c.sql, c.formula)
        for c in _columns_decoder.decode(data)
    )
