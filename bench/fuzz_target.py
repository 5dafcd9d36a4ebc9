"""The fuzz target of ``bench/fuzz.py``: what a session does with one frame, and the
structural mutations of frames (a helper module; run ``bench/fuzz.py``).

One input is one byte saying the encoding (bit 0 set: ``hypertab.v1.msgpack``, binary
frames; clear: ``hypertab.v1.json``, text frames; bit 1 set: the frame arrives as the other
frame type) followed by the frame. :func:`check` does with it what a session does with a
frame (its rules, ``server/hub/session_core.py``), without a socket:

1. A text frame must be UTF-8 (else the connection fails with 1007). The frame then goes
   to a real :class:`~server.hub.session_core.SessionCore` (every scope), which checks the
   frame type against the encoding and decodes it with ``Codec.decode_client``: the only
   documented failure is :class:`DecodeError`, answered as the session answers it
   (``classify`` gives a registered error code and the failing op's index, the request id
   is read leniently by ``Codec.request_id``); the answers the core queued are checked
   and encoded.
2. A decoded message goes through the session rules: ``refusal`` (scopes and table
   allowlist) for several principals, ``message_cost`` (what admission charges), and for an
   ``apply`` the pure op engine ``plan_batch`` against a table with every column type and a
   formula column (the real formula check); a ``query`` on that table is compiled by
   ``plan_query`` and the SQL run on an empty in-memory copy of the table (SQLite must
   accept it); a ``function_define`` is compiled by a fresh ``FunctionRegistry``. Their
   documented refusals are ``BatchError``, ``QueryError`` and ``FormulaError``.

Anything else escaping :func:`check` is a defect, as is an answer breaking the wire's rules
(:class:`RuleViolation`: an unregistered error code, a negative op index, an out-of-range
request id echoed).
"""

from __future__ import annotations

import copy
import functools
import random
import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec

from protocol.codec import JSON, MSGPACK, Codec, codec_for
from protocol.errors import ERRORS
from protocol.formulas import FunctionDefine
from protocol.messages import Apply, Error, Query
from protocol.ops import ColumnType
from server.auth.principal import CredentialKind, Plan, Principal, Scope
from server.engine.batch import BatchError, plan_batch
from server.engine.catalog import ColumnState, TableState
from server.engine.formulas import FormulaCache, make_check
from server.formula import DEFAULT_LIMITS, FormulaError, FunctionRegistry
from server.hub.admission import message_cost
from server.hub.authorize import refusal
from server.hub.session_core import Close, SessionCore
from server.store.query import QueryError, install_functions, plan_query

ENCODINGS = (JSON, MSGPACK)

COUNTERS = ("decoded", "decode_errors", "closed_1007", "refused", "planned", "batch_errors")
"""What :func:`check` counts: frames decoded / refused (decoder or frame type), text frames
failing their UTF-8 check, refusals by the authorizer, batches and queries planned / refused
by the op engine or the query planner (or function definitions refused)."""

# --- the target: what a session does with one frame ---------------------------------------

TABLE = TableState(
    "t1",
    "People",
    "t_1",
    7,
    tuple(
        ColumnState(cid, name, kind, f"c_{i + 2}", formula)
        for i, (cid, name, kind, formula) in enumerate(
            [
                ("name", "Name", ColumnType.TEXT, None),
                ("age", "Age", ColumnType.NUMBER, None),
                ("ok", "Ok", ColumnType.BOOLEAN, None),
                ("when", "When", ColumnType.DATETIME, None),
                ("meta", "Meta", ColumnType.JSON, None),
                ("next", "Next", ColumnType.FORMULA, "{Age} + 1"),
            ]
        )
    ),
)
"""The table batches are planned against (``t1``; any other id is a table never created)."""

_DATABASE = sqlite3.connect(":memory:")
_DATABASE.execute(
    f"CREATE TABLE {TABLE.sql} (_id TEXT PRIMARY KEY, _ord TEXT NOT NULL"
    + "".join(f", {c.sql}" for c in TABLE.columns)
    + ")"
)
install_functions(_DATABASE)
"""An empty table of ``TABLE``'s shape: every planned query runs on it (valid SQL?)."""

_FORMULAS = FormulaCache(max_entries=256)  # bounded: memory must not grow with inputs
_CHECK = make_check(_FORMULAS)


def _principal(scopes: frozenset[Scope], tables: frozenset[str] | None) -> Principal:
    return Principal(
        tenant="acmeacmeacme0001",  # type: ignore[arg-type]
        subject="fuzz",
        kind=CredentialKind.API_KEY,
        credential_id="k3vq8m2x0c9w4j7p",
        scopes=scopes,
        plan=Plan.PRO,
        tables=tables,
    )


PRINCIPALS = (
    _principal(frozenset(Scope), None),
    _principal(frozenset({Scope.TABLES_READ}), None),
    _principal(frozenset({Scope.TABLES_READ, Scope.TABLES_WRITE}), frozenset({"t1"})),
    _principal(frozenset(), frozenset()),
)


class RuleViolation(Exception):
    """An answer the session would send that breaks the wire's own rules (a defect)."""


def _check_answers(codec: Codec, session: SessionCore) -> None:
    """What the session's rules answered (``SessionCore.actions_to_perform``), checked
    against the wire's rules and encoded."""
    for action in session.actions_to_perform():
        if isinstance(action, Close):
            continue  # the bad-frame limit: not reached by one frame
        error = action.message
        if not isinstance(error, Error):
            raise RuleViolation(f"a frame answered with {type(error).__name__}")
        if error.code not in ERRORS or (error.op_index is not None and error.op_index < 0):
            raise RuleViolation(f"a frame answered {error.code!r}, op {error.op_index}")
        if error.id is not None and not 0 <= error.id <= 2**53:
            raise RuleViolation(f"request id {error.id} echoed")
        codec.encode(error)


def _frame(data: bytes, binary: bool) -> bytes | str | None:
    """The frame as the session receives it: ``str`` for a text frame, whose UTF-8
    websockets checks first (None: the connection fails with 1007, RFC 6455 8.1)."""
    if binary:
        return data
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def check(data: bytes, counts: dict[str, int]) -> None:
    """Handle one fuzz input as a session would; raises only on a defect."""
    if not data:
        return
    codec = codec_for(MSGPACK if data[0] & 1 else JSON)
    binary = codec.binary != bool(data[0] & 2)  # bit 1: the other frame type
    frame = _frame(data[1:], binary)
    if frame is None:
        counts["closed_1007"] += 1
        return
    session = SessionCore("fuzz", PRINCIPALS[0], codec)  # every scope: refuses no message
    message = session.receive(frame)
    _check_answers(codec, session)
    if message is None:
        if session.bad_frames != 1:
            raise RuleViolation("a frame refused without counting as a bad frame")
        counts["decode_errors"] += 1
        return
    counts["decoded"] += 1
    for principal in PRINCIPALS:
        if refusal(principal, message) is not None:
            counts["refused"] += 1
    message_cost(message)
    if isinstance(message, Apply):
        try:
            plan_batch(
                message.table,
                TABLE if message.table == TABLE.id else None,
                message.ops,
                next_sql=20,
                name_taken=lambda name: name == "Taken",
                check_formula=_CHECK,
            )
            counts["planned"] += 1
        except BatchError:
            counts["batch_errors"] += 1
    elif isinstance(message, Query) and message.table in (TABLE.id, TABLE.name):
        try:
            plan = plan_query(
                TABLE,
                where=message.where,
                order_by=message.order_by,
                columns=message.columns,
                after=message.after,
                limit=message.limit,
            )
        except QueryError:
            counts["batch_errors"] += 1
        else:  # SQLite must accept what the planner wrote (an error here is a defect)
            _DATABASE.execute(plan.sql, plan.params).fetchall()
            counts["planned"] += 1
    elif isinstance(message, FunctionDefine):
        try:
            FunctionRegistry(DEFAULT_LIMITS).define(message.definition)
        except FormulaError:
            counts["batch_errors"] += 1


# --- seeds and structural mutations ------------------------------------------------------

_COLUMNS = [
    {"id": "a", "name": "A", "type": "text"},
    {"id": "b", "name": "B", "type": "number"},
    {"id": "f", "name": "F", "type": "formula", "formula": "{B} * 2"},
]
_OPS: list[dict[str, Any]] = [
    {"type": "create_table", "name": "New", "columns": _COLUMNS},
    {"type": "rename_table", "name": "Renamed"},
    {"type": "drop_table"},
    {"type": "add_column", "column": {"id": "c", "name": "C", "type": "json"}},
    {"type": "rename_column", "column": "age", "name": "Years"},
    {"type": "drop_column", "column": "ok"},
    {"type": "set_formula", "column": "next", "formula": 'IF({Age} > 10, "old", "young")'},
    {
        "type": "insert_rows",
        "rows": [
            {"id": "r1", "values": {"name": "Ada", "age": 36, "ok": True}},
            {"values": {"when": "2026-01-01T00:00:00Z", "meta": {"k": [1, 2]}}, "after": "r1"},
        ],
    },
    {"type": "update_cells", "row": "r1", "values": {"age": 37, "name": None}},
    {"type": "delete_rows", "rows": ["r1", "r2"]},
    {"type": "move_row", "row": "r2", "before": "r1"},
]
SEED_MESSAGES: list[dict[str, Any]] = [
    {"type": "subscribe", "id": 1, "table": "t1", "since": 3},
    {"type": "subscribe", "id": 2, "name": "People"},
    {"type": "unsubscribe", "id": 3, "table": "t1"},
    {"type": "apply", "id": 4, "table": "t1", "client": "c1", "op": "o1", "ops": _OPS[3:]},
    {"type": "apply", "id": 24, "table": "t1", "client": "c1", "op": "o3", "ops": _OPS[1:3]},
    {"type": "apply", "id": 5, "table": "t9", "client": "c1", "op": "o2", "ops": _OPS[:1]},
    {"type": "query", "id": 6, "table": "t1", "after": "a0", "limit": 100},
    {
        "type": "query",
        "id": 23,
        "table": "People",
        "where": {
            "op": "and",
            "args": [
                {"op": "gt", "column": "Age", "value": 30},
                {"op": "not", "arg": {"op": "contains", "column": "Name", "value": "a%_"}},
                {"op": "in", "column": "ok", "values": [True, False]},
                {"op": "is_null", "column": "When"},
            ],
        },
        "order_by": [{"column": "Name"}, {"column": "age", "desc": True}],
        "columns": ["Name", "next"],
        "limit": 50,
    },
    {"type": "list_tables", "id": 7},
    {"type": "presence", "table": "t1", "state": {"cursor": [1, 2], "sel": "A1"}},
    {"type": "ping", "id": 8},
    {"type": "auth", "id": 9, "token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"},
    {"type": "key_create", "id": 10, "name": "ci", "scopes": ["tables:read"], "tables": ["t1"]},
    {"type": "key_list", "id": 11},
    {"type": "key_revoke", "id": 12, "key": "k3vq8m2x0c9w4j7p"},
    {"type": "key_rotate", "id": 13, "key": "k3vq8m2x0c9w4j7p"},
    {"type": "secret_set", "id": 14, "name": "OPENAI_KEY", "kind": "ai_provider_key", "value": "v"},
    {"type": "secret_list", "id": 15},
    {"type": "secret_reveal", "id": 16, "name": "OPENAI_KEY"},
    {"type": "secret_delete", "id": 17, "name": "OPENAI_KEY"},
    {"type": "function_define", "id": 18, "definition": "DOUBLE(x) = x * 2"},
    {"type": "function_drop", "id": 19, "name": "DOUBLE"},
    {"type": "function_list", "id": 20},
    {"type": "tool_call", "id": 21, "tool": "search", "args": {"q": "x"}},
    {"type": "audit_export", "id": 22, "format": "csv", "limit": 10},
]

WORDS = sorted(
    {m["type"] for m in SEED_MESSAGES}
    | {op["type"] for op in _OPS}
    | {key for m in SEED_MESSAGES for key in m}
    | {key for op in _OPS for key in op}
    | {t.value for t in ColumnType}
    | {s.value for s in Scope}
    | {"values", "after", "before", "order", "formula", "columns", "rows", "id", "$.type"}
)
"""Words of the wire, for libFuzzer's dictionary and for type-tag swaps."""

HOSTILE: list[Any] = [
    0,
    -1,
    2**53,
    2**53 + 1,
    -(2**63),
    2**64 - 1,
    1e300,
    1e308,
    -0.0,
    float("nan"),
    float("inf"),
    True,
    None,
    "",
    "x" * 65,
    "x" * 129,
    "y" * 4097,
    "z" * 9000,
    "\x00",
    "a\nb",
    "'; DROP TABLE t_1; --",
    "../../etc/passwd",
    "{Age} / 0",
    '=HYPERLINK("http://evil")',
    'REPT("a", 1000000)',
    "((((((((((((((((((((1))))))))))))))))))))",
    "\u202etxt.exe",
    b"\xff\xfe",
    [],
    {},
    {"type": "apply"},
    list(range(1001)),
    {f"k{i}": i for i in range(33)},
]

_SENTINEL = "\x00\x01nest-here\x01\x00"
_DEPTHS = (8, 64, 300, 700, 1100, 3000, 6000)


@functools.cache
def seeds() -> list[bytes]:
    """One valid frame of every client message type, in both encodings."""
    out = []
    for message in SEED_MESSAGES:
        out.append(b"\x00" + msgspec.json.encode(message))
        out.append(b"\x01" + msgspec.msgpack.encode(message))
    return out


def _hostile(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(HOSTILE))  # a copy: later mutations change it in place


def _nodes(tree: Any, limit: int = 200) -> list[tuple[Any, Any]]:
    """(container, key) pairs for up to ``limit`` nodes of a decoded frame."""
    found: list[tuple[Any, Any]] = []
    stack = [tree]
    while stack and len(found) < limit:
        node = stack.pop()
        if isinstance(node, dict):
            items: list[tuple[Any, Any]] = [(node, k) for k in node]
        elif isinstance(node, list):
            items = [(node, i) for i in range(len(node))]
        else:
            continue
        for container, key in items:
            found.append((container, key))
            stack.append(container[key])
    return found


def _nest(depth: int, inner: bytes, binary: bool, maps: bool) -> bytes:
    if binary:  # fixarray of one / fixmap of one with key "k"
        return (b"\x81\xa1k" if maps else b"\x91") * depth + inner
    if maps:
        return b'{"k":' * depth + inner + b"}" * depth
    return b"[" * depth + inner + b"]" * depth


def _encode(tree: Any, binary: bool) -> bytes:
    return msgspec.msgpack.encode(tree) if binary else msgspec.json.encode(tree)


def structural(data: bytes, rng: random.Random, max_size: int) -> bytes | None:
    """A structural mutation of ``data``, or None if it is not a decodable document."""
    binary = bool(data[0] & 1)
    try:
        tree = (msgspec.msgpack if binary else msgspec.json).decode(data[1:])
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(tree, dict | list):
        return None
    nodes = _nodes(tree)
    choice = rng.randrange(8)
    if choice == 0 and nodes:  # replace a node by a hostile value
        container, key = rng.choice(nodes)
        container[key] = _hostile(rng)
    elif choice == 1 and nodes:  # drop a field or an element
        container, key = rng.choice(nodes)
        del container[key]
    elif choice == 2:  # add a field
        dicts = [c[k] for c, k in nodes if isinstance(c[k], dict)] + [tree]
        target = rng.choice(dicts)
        if isinstance(target, dict):
            target[rng.choice(WORDS)] = _hostile(rng) if rng.random() < 0.7 else rng.choice(WORDS)
    elif choice == 3 and nodes:  # swap a string for a word of the wire (type tags)
        container, key = rng.choice(nodes)
        container[key] = rng.choice(WORDS)
    elif choice == 4 and nodes:  # repeat a list element past the limits
        lists = [c[k] for c, k in nodes if isinstance(c[k], list) and c[k]]
        if lists:
            target = rng.choice(lists)
            times = rng.choice((32, 1000, 1001, 5000))
            size = len(_encode(target[0], binary))
            target.extend([target[0]] * min(times, max_size // max(size, 1)))
    elif choice == 5:  # re-encode in the other encoding
        binary = not binary
    elif choice == 6 and nodes:  # nest a value very deep
        container, key = rng.choice(nodes)
        inner = _encode(container[key], binary)
        container[key] = _SENTINEL
        nested = _nest(rng.choice(_DEPTHS), inner, binary, maps=rng.random() < 0.5)
        try:
            body = _encode(tree, binary).replace(_encode(_SENTINEL, binary), nested, 1)
        except (TypeError, ValueError, OverflowError):
            return None
        return (b"\x01" if binary else b"\x00") + body
    else:  # splice a seed
        return data[: rng.randrange(1, len(data) + 1)] + rng.choice(seeds())[1:]
    try:
        body = _encode(tree, binary)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return None  # a value one encoding cannot carry (NaN in JSON, huge ints, bytes)
    return (b"\x01" if binary else b"\x00") + body


ByteMutator = Callable[[bytes, int], bytes]
"""libFuzzer's own byte-level mutation (``atheris.Mutate``)."""


def mutate(data: bytes, max_size: int, seed: int, byte_mutate: ByteMutator) -> bytes:
    """libFuzzer's custom mutator: structural half the time, random bytes one time in 20,
    the frame type swapped a few times in 100, libFuzzer's byte mutations otherwise."""
    rng = random.Random(seed)
    draw = rng.random()
    if draw < 0.05:
        return rng.randbytes(rng.randrange(1, min(max_size, 4096) + 1))
    if data and draw < 0.08:  # the same frame as the other frame type
        return bytes([data[0] ^ 2]) + data[1:]
    if data and draw < 0.58:
        try:
            out = structural(data, rng, max_size)
        except Exception:  # a mutation bug must not stop the run; fall back to bytes
            out = None
        if out is not None:
            return out[:max_size]
    return bytes(byte_mutate(data, max_size))
