"""Per-message authorization: which scope each message needs (pure).

Checked for every message before it reaches a store; the table allowlist is checked where
the table is known (after a subscribe or query by name resolves it).
"""

from __future__ import annotations

from protocol.audit import AuditExport, ToolCall, ToolResult
from protocol.formulas import FunctionDefine, FunctionDrop, FunctionList
from protocol.identity import Auth, KeyCreate, KeyList, KeyRevoke, KeyRotate, KeyUpdate
from protocol.messages import (
    Apply,
    ClientMessage,
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
from server.auth.principal import Principal, Scope


def required_scopes(message: ClientMessage) -> tuple[Scope, ...]:
    """The scopes a message needs."""
    if isinstance(message, Apply):
        if any(isinstance(op, SCHEMA_OPS) for op in message.ops):
            return (Scope.TABLES_WRITE, Scope.SCHEMA_WRITE)
        return (Scope.TABLES_WRITE,)
    if isinstance(message, (Subscribe, Query, ListTables, Presence)):
        return (Scope.TABLES_READ,)
    if isinstance(message, (FunctionDefine, FunctionDrop)):
        return (Scope.SCHEMA_WRITE,)
    if isinstance(message, FunctionList):
        return (Scope.TABLES_READ,)
    if isinstance(message, AuditExport):
        return (Scope.AUDIT_READ,)
    if isinstance(message, (KeyCreate, KeyList, KeyRevoke, KeyRotate, KeyUpdate)):
        return (Scope.KEYS_ADMIN,)
    if isinstance(message, (WebhookAdd, WebhookList, WebhookRemove, WebhookTest)):
        return (Scope.KEYS_ADMIN,)  # a webhook sends all the tenant's data out
    if isinstance(message, (SecretSet, SecretDelete)):
        return (Scope.SECRETS_WRITE,)
    if isinstance(message, SecretReveal):
        return (Scope.SECRETS_READ,)
    if isinstance(message, SecretList):
        return ()  # secrets:read OR secrets:write: checked by server/hub/secrets.py
    if isinstance(message, (Ping, Unsubscribe, Auth, ToolCall, ToolResult)):
        # Any authenticated connection: they only record, audited per tenant. A tool call's
        # own needs are checked (and the refusal recorded) by server/hub/audit.py.
        return ()
    # Refuse by default: a message type added without a line above is never let through.
    raise Unlisted(type(message).__name__)


class Unlisted(Exception):
    """A message type with no authorization rule (a server bug, refused)."""


def refusal(principal: Principal, message: ClientMessage) -> str | None:
    """Why ``principal`` may not send ``message``, or None if it may."""
    try:
        scopes = required_scopes(message)
    except Unlisted:
        return "this message type is not permitted"
    for scope in scopes:
        if not principal.can(scope):
            return f"this credential lacks the {scope.value} scope"
    table = getattr(message, "table", None)
    if isinstance(message, Query):
        return None  # ``table`` may be a name: checked once resolved (Session.query)
    if isinstance(table, str) and not principal.may_touch(table):
        return "this credential may not touch that table"
    return None
