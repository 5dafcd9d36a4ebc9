"""Everything the hub knows about each message type a client may send, in one table.

One :class:`MessageType` per ``msgspec`` Struct of :data:`protocol.messages.ClientMessage`:
the scopes it needs, whether it names a table the allowlist must cover, what it costs
against the plan's rate limit, whether it needs a live subscription, and which handler runs
it. Authorization (``server/hub/authorize.py``), admission (``server/hub/admission.py``),
the session rules (``server/hub/session_core.py``) and the session's dispatch
(``server/hub/session.py``) all read this table; none of them has a branch per type.

A type missing here is refused (``forbidden``) by the authorizer, never let through, and
``tests/hub/test_hub_messages.py`` fails until it has its row.

Handlers are registered at start-up in ``Services.handlers`` by their feature (the
session's own messages: ``server/hub/tables.py``; then identity, audit, secrets, functions,
webhooks); the table names the function each must register, which
``tests/hub/test_hub_wiring.py`` checks against a running hub.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.audit import AuditExport, ToolCall, ToolResult
from protocol.formulas import FunctionDefine, FunctionDrop, FunctionList
from protocol.identity import Auth, KeyCreate, KeyList, KeyRevoke, KeyRotate, KeyUpdate
from protocol.messages import (
    Apply,
    ListTables,
    Ping,
    Presence,
    Query,
    Subscribe,
    Unsubscribe,
)
from protocol.ops import SCHEMA_OPS
from protocol.secrets import SecretDelete, SecretList, SecretReveal, SecretSet
from protocol.webhooks import WebhookAdd, WebhookList, WebhookRemove, WebhookTest
from server.auth.principal import Scope


class TableRule(enum.Enum):
    """How the table allowlist applies to a message."""

    NONE = "none"
    """The message names no table."""
    FIELD = "field"
    """Its ``table`` field, when set, must be on the allowlist (checked with the scopes)."""
    RESOLVED = "resolved"
    """``table`` may be a name: the handler checks the table it resolves to, so that a
    refusal says nothing about tables the credential may not see."""


@dataclass(frozen=True, slots=True)
class MessageType:
    """What the hub knows about one client message type."""

    kind: type
    """The ``msgspec`` Struct the codec decodes."""
    handler: str
    """Its handler, ``module:qualified.name``."""
    scopes: tuple[Scope, ...] = ()
    """Scopes it needs, every one. Empty: any authenticated connection (the handler may
    check more, e.g. ``secret_list`` takes either secrets scope)."""
    schema_scopes: tuple[Scope, ...] = ()
    """Added to :attr:`scopes` when a batch carries a schema op (``apply`` only)."""
    table: TableRule = TableRule.NONE
    cost: int = 0
    """Its cost against the plan's per-minute limit (besides 1 against the connection's
    burst limit, which every message pays)."""
    cost_per_op: bool = False
    """Cost is the number of ops it carries (``apply``: batching cannot bypass the limit)."""
    subscribed: bool = False
    """Only valid on a table the connection subscribed to (``presence``)."""

    def needs(self, message: Any) -> tuple[Scope, ...]:
        """The scopes ``message`` (of this type) needs."""
        if self.schema_scopes and any(isinstance(op, SCHEMA_OPS) for op in message.ops):
            return self.scopes + self.schema_scopes
        return self.scopes

    def cost_of(self, message: Any) -> int:
        """What ``message`` (of this type) costs against the plan's limit."""
        return len(message.ops) if self.cost_per_op else self.cost


_R, _W, _S = Scope.TABLES_READ, Scope.TABLES_WRITE, Scope.SCHEMA_WRITE
_KEYS = (Scope.KEYS_ADMIN,)

TABLE: tuple[MessageType, ...] = (
    # The session's own: tables, changes, presence.
    MessageType(
        Apply,
        "server.hub.tables:apply",
        (_W,),
        schema_scopes=(_S,),
        table=TableRule.FIELD,
        cost_per_op=True,
    ),
    MessageType(Subscribe, "server.hub.tables:subscribe", (_R,), table=TableRule.FIELD),
    MessageType(Unsubscribe, "server.hub.tables:unsubscribe", table=TableRule.FIELD),
    MessageType(Query, "server.hub.tables:query", (_R,), table=TableRule.RESOLVED),
    MessageType(ListTables, "server.hub.tables:list_tables", (_R,)),
    MessageType(
        Presence,
        "server.hub.tables:presence",
        (_R,),
        table=TableRule.FIELD,
        subscribed=True,
    ),
    MessageType(Ping, "server.hub.tables:ping"),
    # Custom formula functions (server/hub/functions.py).
    MessageType(FunctionDefine, "server.hub.functions:on_define", (_S,)),
    MessageType(FunctionDrop, "server.hub.functions:on_drop", (_S,)),
    MessageType(FunctionList, "server.hub.functions:on_list", (_R,)),
    # Audit (server/hub/audit.py). Each writes an audit entry, so each costs 1. A tool
    # call's own needs are checked (and the refusal recorded) by its handler.
    MessageType(ToolCall, "server.hub.audit:ToolCalls.tool_call", cost=1),
    MessageType(ToolResult, "server.hub.audit:ToolCalls.tool_result"),
    MessageType(AuditExport, "server.hub.audit:audit_export", (Scope.AUDIT_READ,), cost=1),
    # Identity (server/hub/identity.py): re-authentication and key administration.
    MessageType(Auth, "server.hub.identity:Identity.reauth"),
    MessageType(KeyCreate, "server.hub.identity:Identity.key_create", _KEYS),
    MessageType(KeyList, "server.hub.identity:Identity.key_list", _KEYS),
    MessageType(KeyRevoke, "server.hub.identity:Identity.key_revoke", _KEYS),
    MessageType(KeyRotate, "server.hub.identity:Identity.key_rotate", _KEYS),
    MessageType(KeyUpdate, "server.hub.identity:Identity.key_update", _KEYS),
    # Webhooks (server/hub/webhooks.py): keys:admin, since a webhook sends all the
    # tenant's data out.
    MessageType(
        WebhookAdd, "server.hub.webhooks:WebhookHandlers.add", _KEYS, table=TableRule.FIELD
    ),
    MessageType(WebhookList, "server.hub.webhooks:WebhookHandlers.list", _KEYS),
    MessageType(WebhookRemove, "server.hub.webhooks:WebhookHandlers.remove", _KEYS),
    MessageType(WebhookTest, "server.hub.webhooks:WebhookHandlers.test", _KEYS),
    # Secrets (server/hub/secrets.py). secret_list takes secrets:read OR secrets:write:
    # checked by its handler.
    MessageType(SecretSet, "server.hub.secrets:handle_set", (Scope.SECRETS_WRITE,)),
    MessageType(SecretList, "server.hub.secrets:handle_list"),
    MessageType(SecretReveal, "server.hub.secrets:handle_reveal", (Scope.SECRETS_READ,)),
    MessageType(SecretDelete, "server.hub.secrets:handle_delete", (Scope.SECRETS_WRITE,)),
)

MESSAGE_TYPES: dict[type, MessageType] = {t.kind: t for t in TABLE}
""":data:`TABLE` by Struct class: one dictionary lookup per message."""


def misregistered(handlers: dict[type, Callable[..., Any]]) -> list[str]:
    """Feature handlers (``Services.handlers``) that are not the ones the table names, or
    that handle a type it does not list; empty when the wiring agrees with the table."""
    wrong = []
    for kind, handler in handlers.items():
        row = MESSAGE_TYPES.get(kind)
        name = f"{getattr(handler, '__module__', '?')}:{getattr(handler, '__qualname__', '?')}"
        if row is None or row.handler != name:
            wrong.append(f"{kind.__name__}: {name}")
    return sorted(wrong)
