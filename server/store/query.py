"""Compiling a ``query`` (filter, sort, column selection, cursor) to one SQLite statement.

How it works
------------
:func:`plan_query` turns the request into SQL text plus a list of bound parameters, for
one :class:`~server.engine.catalog.TableState` (read in the same transaction that runs the
statement, so the columns cannot change in between). No user text reaches the SQL text:
column references resolve through the catalog to generated ``c_<n>`` names, every value is a
``?`` parameter, and the LIKE patterns of text matching are bound parameters too, with
``%``, ``_`` and the escape character escaped. The only other words in the SQL are fixed
keywords, built-in functions and the two functions :func:`install_functions` registers on
the read connection.

Every condition is two-valued: true or false for each row, never unknown. Comparisons with
a null cell are false, and ``not`` is compiled as ``(x) IS NOT 1``, so ``not F`` holds exactly
where ``F`` does not (SQL's three-valued ``NOT NULL`` would drop those rows).

Sorting: the requested keys (nulls last, ascending or descending), then the table's row
order (``_ord``, then ``_id``), which makes the order total. A page's cursor carries the sort
key of its last row (keyset pagination) and a digest of the query's shape; the next page
starts strictly after that key, so rows inserted meanwhile never shift the pages (no offset),
and a cursor from another query is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import msgspec

from protocol.ops import ColumnType
from protocol.query import (
    ROW_ID,
    And,
    ColumnRef,
    Compare,
    Contains,
    Eq,
    Filter,
    FilterValue,
    Ge,
    Gt,
    In,
    IsNull,
    Le,
    Lt,
    Match,
    Ne,
    Not,
    Or,
    OrderBy,
    StartsWith,
    filter_problem,
)
from server.engine.catalog import ColumnState, TableState

CURSOR_PREFIX = "q1."
"""Marks a cursor of this format. Order keys (the cursors of earlier servers) never hold
a dot, so the two cannot be confused."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

_COMPARE_SQL: dict[type[Compare], str] = {Eq: "=", Ne: "<>", Lt: "<", Le: "<=", Gt: ">", Ge: ">="}


class QueryError(Exception):
    """The query cannot run as asked: ``code`` is a wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _invalid(message: str) -> QueryError:
    return QueryError("invalid_filter", message)


# --- SQL functions of the read connection ---------------------------------------------------


def instant(value: object) -> int | None:
    """A datetime cell as microseconds since the epoch (naive times are UTC); None for
    anything that is not ISO-8601 text. Registered as ``ht_instant``."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def fold(value: object) -> str | None:
    """Text case-folded for caseless matching; None for anything else. ``ht_fold``."""
    return value.casefold() if isinstance(value, str) else None


def install_functions(conn: sqlite3.Connection) -> None:
    """Register the functions compiled queries use (run in the connection's thread)."""
    conn.create_function("ht_instant", 1, instant, deterministic=True)
    conn.create_function("ht_fold", 1, fold, deterministic=True)


# --- column references ----------------------------------------------------------------------


class _Kind(Enum):
    ROW_ID = "row id"
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    JSON = "json"
    FORMULA = "formula"


_KINDS = {
    ColumnType.TEXT: _Kind.TEXT,
    ColumnType.NUMBER: _Kind.NUMBER,
    ColumnType.BOOLEAN: _Kind.BOOLEAN,
    ColumnType.DATETIME: _Kind.DATETIME,
    ColumnType.JSON: _Kind.JSON,
    ColumnType.FORMULA: _Kind.FORMULA,
}


@dataclass(frozen=True, slots=True)
class _Column:
    kind: _Kind
    sql: str  # a generated name (``c_<n>``) or ``_id``; never user text
    state: ColumnState | None

    @property
    def key(self) -> str:
        """The SQL expression the column compares and sorts by."""
        return f"ht_instant({self.sql})" if self.kind is _Kind.DATETIME else self.sql


def _resolve(table: TableState, ref: ColumnRef) -> _Column:
    if ref == ROW_ID:  # always the row id, even if a column has that id or name
        return _Column(_Kind.ROW_ID, "_id", None)
    column = table.column(ref) or table.column_named(ref)
    if column is not None:
        return _Column(_KINDS[column.type], column.sql, column)
    raise QueryError("unknown_column", f"the table has no column {ref[:64]!r}")


# --- filters --------------------------------------------------------------------------------


def _bound(column: _Column, value: FilterValue, what: str) -> Any:
    """``value`` as the parameter compared with ``column.key``; refuses mismatched types."""
    if value is None:
        raise _invalid(f"{what}: compare with null using is_null")
    kind = column.kind
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (_Kind.TEXT, _Kind.ROW_ID):
        if isinstance(value, str):
            return value
    elif kind is _Kind.NUMBER:
        if is_number:
            return value
    elif kind is _Kind.BOOLEAN:
        if isinstance(value, bool):
            return int(value)  # stored as 0/1
    elif kind is _Kind.DATETIME:
        moment = instant(value)
        if moment is not None:
            return moment
        raise _invalid(f"{what}: a datetime column compares with ISO-8601 text")
    elif kind is _Kind.FORMULA:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"  # how computed booleans are stored
        return value
    elif kind is _Kind.JSON:
        raise _invalid(f"{what}: a json column can only be tested with is_null")
    raise _invalid(f"{what}: a {kind.value} column compares with a {kind.value} value")


def _op(node: msgspec.Struct) -> str:
    return str(node.__struct_config__.tag)


class _Compiler:
    """Builds SQL text and its parameters; one per statement."""

    def __init__(self, table: TableState) -> None:
        self.table = table
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        """A numbered parameter holding ``value`` (numbered, so the SQL may repeat it)."""
        self.params.append(value)
        return f"?{len(self.params)}"

    def where(self, node: Filter) -> str:
        match node:
            case And(args=args):
                return "(" + " AND ".join(self.where(arg) for arg in args) + ")"
            case Or(args=args):
                return "(" + " OR ".join(self.where(arg) for arg in args) + ")"
            case Not(arg=arg):
                return f"({self.where(arg)} IS NOT 1)"
            case IsNull(column=ref):
                column = _resolve(self.table, ref)
                return "0" if column.kind is _Kind.ROW_ID else f"({column.sql} IS NULL)"
            case In(column=ref, values=values):
                column = _resolve(self.table, ref)
                if not values:
                    return "0"
                marks = ", ".join(self.bind(_bound(column, v, "in")) for v in values)
                return f"({column.key} IN ({marks}))"
            case Compare(column=ref, value=value):
                return self._compare(node, _resolve(self.table, ref), value)
            case Match(column=ref, value=text):
                return self._match(node, _resolve(self.table, ref), text)
        raise _invalid("unknown filter node")  # pragma: no cover - the union is closed

    def _compare(self, node: Compare, column: _Column, value: FilterValue) -> str:
        op = _COMPARE_SQL[type(node)]
        bound = _bound(column, value, _op(node))
        test = f"{column.key} {op} {self.bind(bound)}"
        if column.kind is _Kind.FORMULA and op not in ("=", "<>"):
            # Computed cells mix numbers and text; SQLite orders every number before every
            # text, so an ordering test must stay within the value's own kind.
            kinds = "'text'" if isinstance(bound, str) else "'integer', 'real'"
            return f"(typeof({column.sql}) IN ({kinds}) AND {test})"
        return f"({test})"

    def _match(self, node: Match, column: _Column, text: str) -> str:
        """Caseless text matching, by Unicode case folding (``str.casefold``).

        SQLite's LIKE folds only ASCII letters, in C; the exact rule needs a Python call
        per cell (``ht_fold``), several times slower. So a cell that is plain ASCII (as
        many bytes as characters, which also sends text holding a NUL to the exact path)
        is matched by LIKE against the case-folded needle, with ``%``, ``_`` and the
        escape character escaped, and every other cell by ``ht_fold``. For ASCII cells the
        two agree: their case folding is ASCII lower-casing, which LIKE ignores.
        """
        if column.kind not in (_Kind.TEXT, _Kind.FORMULA, _Kind.ROW_ID):
            raise _invalid(f"{_op(node)}: a {column.kind.value} column holds no text")
        cell = column.sql
        needle = text.casefold()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if isinstance(node, Contains):
            pattern = self.bind(f"%{escaped}%")
            exact = f"instr(ht_fold({cell}), {self.bind(needle)}) > 0"
        else:
            assert isinstance(node, StartsWith)
            pattern = self.bind(f"{escaped}%")
            length = self.bind(len(needle))
            exact = f"substr(ht_fold({cell}), 1, {length}) = {self.bind(needle)}"
        plain = f"length(CAST({cell} AS BLOB)) = length({cell})"
        return (
            f"(typeof({cell}) = 'text' AND CASE WHEN {plain}"
            f" THEN {cell} LIKE {pattern} ESCAPE '\\' ELSE {exact} END)"
        )


# --- sorting and cursors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    sql: str
    desc: bool
    nullable: bool


def _sort_keys(table: TableState, order_by: Sequence[OrderBy]) -> list[_Key]:
    keys = []
    for entry in order_by:
        column = _resolve(table, entry.column)
        if column.kind is _Kind.JSON:
            raise _invalid("order_by: json columns cannot be sorted")
        keys.append(_Key(column.key, entry.desc, column.kind is not _Kind.ROW_ID))
    keys.append(_Key("_ord", False, False))
    keys.append(_Key("_id", False, False))
    return keys


_cursor_encoder = msgspec.msgpack.Encoder()
_cursor_decoder = msgspec.msgpack.Decoder(tuple[bytes, list[int | float | str | None]])


def encode_cursor(shape: bytes, key: Sequence[Any]) -> str:
    """The opaque cursor for a page ending at a row with sort key ``key``."""
    raw = _cursor_encoder.encode((shape, list(key)))
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, shape: bytes, length: int) -> list[Any]:
    """The sort key in ``cursor``; refused unless it was made for a query of ``shape``."""
    body = cursor.removeprefix(CURSOR_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        made_for, key = _cursor_decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise QueryError("invalid_cursor", "the cursor is not one this server made") from None
    if made_for != shape or len(key) != length:
        raise QueryError("invalid_cursor", "the cursor belongs to a different query")
    return key


def _after(keys: list[_Key], values: list[Any], compiler: _Compiler) -> str:
    """Rows strictly after ``values`` in the order of ``keys`` (nulls last)."""
    if len(keys) == 2:  # the row order alone: a form SQLite can answer from the _ord index
        order, row = compiler.bind(values[0]), compiler.bind(values[1])
        return f"(_ord >= {order} AND (_ord > {order} OR _id > {row}))"
    terms = []
    equal: list[str] = []
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            mark = compiler.bind(value)
            beyond = f"{key.sql} {'<' if key.desc else '>'} {mark}"
            if key.nullable:
                beyond = f"({beyond} OR {key.sql} IS NULL)"
            terms.append("(" + " AND ".join([*equal, beyond]) + ")")
            equal.append(f"{key.sql} = {mark}")
        else:  # nothing sorts after a null but other nulls: only the next keys can differ
            equal.append(f"{key.sql} IS NULL")
    return "(" + " OR ".join(terms) + ")" if terms else "0"


# --- the statement --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """A compiled query: run ``sql`` with ``params``.

    Result rows are ``_id, _ord``, the cells of ``columns``, then the sort key values beyond
    the row order (``extra_keys`` of them). ``shape`` is the digest a cursor must match.
    """

    sql: str
    params: list[Any]
    columns: tuple[ColumnState, ...]
    extra_keys: int
    shape: bytes

    def cursor(self, record: Sequence[Any]) -> str:
        """The cursor of the page ending at this result row."""
        width = 2 + len(self.columns)
        key = [*record[width : width + self.extra_keys], record[1], record[0]]
        return encode_cursor(self.shape, key)


def plan_query(
    table: TableState,
    *,
    where: Filter | None,
    order_by: Sequence[OrderBy],
    columns: Sequence[ColumnRef] | None,
    after: str | None,
    limit: int,
) -> QueryPlan:
    """Compile a query on ``table`` fetching up to ``limit`` rows. Raises :class:`QueryError`."""
    compiler = _Compiler(table)
    conditions = []
    if where is not None:
        problem = filter_problem(where)
        if problem is not None:
            raise _invalid(problem)
        conditions.append(compiler.where(where))
    keys = _sort_keys(table, order_by)
    shape_source = _cursor_encoder.encode(
        (table.id, conditions, compiler.params, [(k.sql, k.desc) for k in keys])
    )
    shape = hashlib.blake2b(shape_source, digest_size=12).digest()
    if after is not None:
        if after.startswith(CURSOR_PREFIX):
            conditions.append(_after(keys, decode_cursor(after, shape, len(keys)), compiler))
        elif not order_by:  # an order key: the cursor of servers before filters existed
            conditions.append(f"_ord > {compiler.bind(after)}")
        else:
            raise QueryError("invalid_cursor", "the cursor belongs to a different query")
    selected = _selection(table, columns)
    extra = keys[:-2]
    names = "".join(f", {c.sql}" for c in selected) + "".join(f", {k.sql}" for k in extra)
    where_sql = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    order_sql = ", ".join(f"{k.sql} {'DESC' if k.desc else 'ASC'} NULLS LAST" for k in extra)
    order_sql = (order_sql + ", " if order_sql else "") + "_ord, _id"
    sql = (
        f"SELECT _id, _ord{names} FROM {table.sql}{where_sql}"  # noqa: S608 - generated names
        f" ORDER BY {order_sql} LIMIT {compiler.bind(limit)}"
    )
    return QueryPlan(sql, compiler.params, selected, len(extra), shape)


def _selection(table: TableState, columns: Sequence[ColumnRef] | None) -> tuple[ColumnState, ...]:
    if columns is None:
        return table.columns
    chosen: dict[str, ColumnState] = {}
    for ref in columns:
        column = _resolve(table, ref)
        if column.state is not None:
            chosen.setdefault(column.state.id, column.state)
    return tuple(chosen.values())
