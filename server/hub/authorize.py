"""Per-message authorization: the scopes and table rule of each message type (pure).

Checked for every message before it reaches a store, from the message table
(``server/hub/messages.py``); a table named by a name rather than an id is checked where it
resolves (a query by name, a subscribe by name).
"""

from __future__ import annotations

from typing import Any

from server.auth.principal import Principal, Scope
from server.hub.messages import MESSAGE_TYPES, MessageType, TableRule


class Unlisted(Exception):
    """A message type with no row in the message table (a server bug, refused)."""


def required_scopes(message: Any) -> tuple[Scope, ...]:
    """The scopes a message needs; :class:`Unlisted` for a type the table lacks."""
    row = MESSAGE_TYPES.get(type(message))
    if row is None:
        raise Unlisted(type(message).__name__)
    return row.needs(message)


def refusal(principal: Principal, message: Any, row: MessageType | None = None) -> str | None:
    """Why ``principal`` may not send ``message``, or None if it may. ``row``: the
    message's row of the table, when the caller has looked it up already."""
    if row is None:
        row = MESSAGE_TYPES.get(type(message))
        if row is None:  # refuse by default: a type added without a row never gets through
            return "this message type is not permitted"
    for scope in row.needs(message):
        if not principal.can(scope):
            return f"this credential lacks the {scope.value} scope"
    if row.table is TableRule.FIELD:
        table = message.table
        if table is not None and not principal.may_touch(table):
            return "this credential may not touch that table"
    return None
