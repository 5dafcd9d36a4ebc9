"""Every message of the wire, as msgspec Structs tagged by their ``type`` field.

Client -> server: subscribe, unsubscribe, apply, query, list_tables, presence, ping.
Server -> client: welcome, snapshot, subscribed, changes, ack, query_result, table_list,
ok, error, presence_event, pong.

Requests carry a client-chosen ``id``; the response (or ``error``) echoes it. ``changes`` and
``presence_event`` are unsolicited. New fields always get defaults so older peers keep
working; unknown fields are ignored by the server (forward compatible) except inside ops.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from protocol.audit import AuditChunk, AuditExport, ToolCall, ToolResult
from protocol.formulas import FunctionClientMessage, FunctionServerMessage
from protocol.identity import IdentityClientMessage, IdentityServerMessage
from protocol.ids import Id, Name, RequestId, Version
from protocol.limits import (
    MAX_COLUMNS,
    MAX_CURSOR_CHARS,
    MAX_OPS_PER_BATCH,
    MAX_ORDER_BY,
    MAX_PRESENCE_KEYS,
    MAX_QUERY_LIMIT,
)
from protocol.ops import ColumnDef, Op, Row
from protocol.query import ColumnRef, Filter, OrderBy
from protocol.secrets import SecretClientMessage, SecretServerMessage
from protocol.webhooks import WebhookClientMessage, WebhookServerMessage

# --- client -> server -------------------------------------------------------------------


class Subscribe(Struct, tag="subscribe", omit_defaults=True):
    """Follow a table, by ``table`` id or by ``name``.

    Without ``since`` (or when the op log no longer reaches back to it) the server sends a
    snapshot in chunks; with it, the changes after ``since``. Either way ``subscribed`` then
    marks the point from which live ``changes`` follow.
    """

    id: RequestId
    table: Id | None = None
    name: Name | None = None
    since: Version | None = None


class Unsubscribe(Struct, tag="unsubscribe"):
    """Stop following a table; answered by ``ok``."""

    id: RequestId
    table: Id


class Apply(Struct, tag="apply"):
    """An atomic batch of ops on one table.

    ``client`` (stable per client instance) and ``op`` (unique per batch for that client)
    make the batch idempotent: a resent batch is acknowledged with its original version and
    not applied twice.
    """

    id: RequestId
    table: Id
    client: Id
    op: Id
    ops: Annotated[list[Op], Meta(min_length=1, max_length=MAX_OPS_PER_BATCH)]


class Query(Struct, tag="query", omit_defaults=True):
    """Read rows without subscribing, a page at a time (``after``: the previous ``next``).

    ``table`` is a table id or, when no table has that id, a table name. ``where`` filters,
    ``order_by`` sorts (the table's row order breaks ties and is the default), ``columns``
    selects the cells the rows carry. See protocol/query.py and docs/protocol.md.
    """

    id: RequestId
    table: Name
    after: Annotated[str, Meta(max_length=MAX_CURSOR_CHARS)] | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_QUERY_LIMIT)] = 500
    where: Filter | None = None
    order_by: Annotated[list[OrderBy], Meta(max_length=MAX_ORDER_BY)] = []
    columns: Annotated[list[ColumnRef], Meta(max_length=MAX_COLUMNS)] | None = None


class ListTables(Struct, tag="list_tables"):
    """List the tenant's tables (those the credential may see)."""

    id: RequestId


class Presence(Struct, tag="presence"):
    """Ephemeral state (cursor, selection) shared with a table's subscribers; not stored."""

    table: Id
    state: Annotated[dict[str, Any], Meta(max_length=MAX_PRESENCE_KEYS)]


class Ping(Struct, tag="ping"):
    """Liveness check; answered by ``pong``."""

    id: RequestId


ClientMessage = (
    Subscribe
    | Unsubscribe
    | Apply
    | Query
    | ListTables
    | Presence
    | Ping
    | ToolCall
    | ToolResult
    | AuditExport
    | IdentityClientMessage
    | SecretClientMessage
    | FunctionClientMessage
    | WebhookClientMessage
)

# --- server -> client -------------------------------------------------------------------


class ServerLimits(Struct):
    """Limits the client must respect (and the rates it is allowed)."""

    max_frame_bytes: int
    max_ops_per_batch: int
    ops_per_minute: int
    burst_per_second: int


class Welcome(Struct, tag="welcome", omit_defaults=True):
    """First message on every connection: who the server thinks you are."""

    session: str
    tenant: str
    subject: str
    scopes: list[str]
    plan: str
    limits: ServerLimits
    encoding: str
    expires_at: float | None = None
    tables: list[str] | None = None


class TableInfo(Struct, omit_defaults=True):
    """A table's identity, version and columns."""

    id: str
    name: str
    version: int
    columns: list[ColumnDef] = []


class Snapshot(Struct, tag="snapshot"):
    """One chunk of a table's state at ``version``; ``last`` marks the final chunk."""

    id: int
    table: TableInfo
    rows: list[Row]
    last: bool


class Subscribed(Struct, tag="subscribed"):
    """The subscription is live: ``changes`` after ``version`` follow."""

    id: int
    table: str
    version: int


class Change(Struct, omit_defaults=True):
    """One committed batch: the table's new version and the ops as applied.

    ``by`` is the subject that sent it, ``client``/``op`` its idempotency ids.
    """

    version: int
    ops: list[Op]
    by: str = ""
    client: str = ""
    op: str = ""


class Changes(Struct, tag="changes"):
    """Committed batches of one table, consecutive versions in order."""

    table: str
    changes: list[Change]


class Ack(Struct, tag="ack", omit_defaults=True):
    """The batch ``op`` is durable at ``version``. ``duplicate``: it had been applied before."""

    id: int
    op: str
    version: int
    duplicate: bool = False


class QueryResult(Struct, tag="query_result", omit_defaults=True):
    """A page of rows; ``next`` is the cursor for the following page, if any."""

    id: int
    table: str
    version: int
    rows: list[Row]
    next: str | None = None


class TableList(Struct, tag="table_list"):
    """The tenant's tables."""

    id: int
    tables: list[TableInfo]


class Ok(Struct, tag="ok"):
    """A request without other result succeeded."""

    id: int


class Error(Struct, tag="error", omit_defaults=True):
    """A request failed (``id`` set) or a frame could not be read (``id`` absent).

    ``code`` is from :data:`protocol.errors.ERRORS`; ``op_index`` names the failing op of a
    batch; ``retry_after_ms`` comes with ``rate_limited``.
    """

    code: str
    message: str
    id: int | None = None
    op_index: int | None = None
    retry_after_ms: int | None = None


class PresenceEvent(Struct, tag="presence_event", omit_defaults=True):
    """Another session's presence on a subscribed table; ``state`` null means it left."""

    table: str
    session: str
    subject: str
    state: dict[str, Any] | None = None


class Pong(Struct, tag="pong"):
    """Answer to ``ping``."""

    id: int


ServerMessage = (
    Welcome
    | Snapshot
    | Subscribed
    | Changes
    | Ack
    | QueryResult
    | TableList
    | Ok
    | Error
    | PresenceEvent
    | Pong
    | AuditChunk
    | IdentityServerMessage
    | SecretServerMessage
    | FunctionServerMessage
    | WebhookServerMessage
)
