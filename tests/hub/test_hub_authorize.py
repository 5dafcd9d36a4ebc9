"""Authorization by the message table: scopes and the table allowlist (pure)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from hub_rules import principal

from protocol.identity import KeyCreate
from protocol.messages import ClientMessage, Query, Subscribe
from protocol.secrets import SecretList, SecretReveal
from protocol.webhooks import WebhookAdd
from server.auth.principal import ALL_SCOPES, Scope
from server.hub.authorize import Unlisted, refusal, required_scopes


def _build(kind: Any) -> Any:
    # Struct __init__ checks nothing at runtime, so placeholders are fine for a type rule.
    required = [f for f in msgspec.inspect.type_info(kind).fields if f.required]
    return kind(**{f.name: ([] if f.name == "ops" else None) for f in required})


@pytest.mark.parametrize("kind", typing.get_args(ClientMessage), ids=lambda k: k.__name__)
def test_every_client_message_has_a_rule_and_all_scopes_pass_it(kind: Any) -> None:
    message = _build(kind)
    required_scopes(message)  # Unlisted would fail the test
    assert refusal(principal(ALL_SCOPES), message) is None


def test_a_type_without_a_row_is_refused() -> None:
    class Teleport(msgspec.Struct, tag="teleport"):
        id: int

    with pytest.raises(Unlisted):
        required_scopes(Teleport(id=1))
    assert refusal(principal(), Teleport(id=1)) == "this message type is not permitted"


def test_key_and_webhook_administration_need_keys_admin() -> None:
    without = principal(ALL_SCOPES - {Scope.KEYS_ADMIN})
    for message in (KeyCreate(id=1, name="k", scopes=[]), WebhookAdd(id=1, url="https://x")):
        assert refusal(without, message) == "this credential lacks the keys:admin scope"


def test_secrets_reveal_needs_read_and_listing_is_left_to_its_handler() -> None:
    nothing = principal(frozenset())
    assert refusal(nothing, SecretReveal(id=1, name="s")) == (
        "this credential lacks the secrets:read scope"
    )
    assert refusal(nothing, SecretList(id=1)) is None  # read OR write: checked by the handler


def test_the_allowlist_applies_to_table_ids_not_to_names() -> None:
    limited = principal(tables=frozenset({"t1"}))
    assert refusal(limited, Subscribe(id=1, table="t2")) is not None
    assert refusal(limited, Subscribe(id=1, name="Other")) is None  # checked once resolved
    assert refusal(limited, Query(id=1, table="Other")) is None  # an id or a name
    assert refusal(limited, WebhookAdd(id=1, url="https://x")) is None  # every table: no field
    assert refusal(limited, WebhookAdd(id=1, url="https://x", table="t2")) is not None
