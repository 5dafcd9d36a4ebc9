"""Every client message type has an authorization rule (pure)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from protocol.messages import ClientMessage
from server.hub.authorize import Unlisted, required_scopes


def _build(kind: Any, values: dict[str, Any]) -> Any:
    # Struct __init__ checks nothing at runtime, so placeholders are fine for a type rule.
    return kind(**values)


def test_every_client_message_has_a_rule() -> None:
    unlisted = []
    for kind in typing.get_args(ClientMessage):
        message = _build(
            kind,
            {
                f.name: ([] if f.name == "ops" else None)
                for f in msgspec.inspect.type_info(kind).fields
                if f.required
            },
        )
        try:
            required_scopes(message)
        except Unlisted:
            unlisted.append(kind.__name__)
    assert unlisted == []
