"""Connection log fields: ids of the connection, tenant and credential, never the credential."""

from __future__ import annotations

import gc
import logging
import uuid
import weakref

from hub_rules import principal

from server.hub.logcontext import ConnectionFields, connection_fields


class Conn:
    """What a hub connection carries once its handshake verified a principal."""

    def __init__(self) -> None:
        self.id = uuid.UUID(int=7)
        self.principal = principal()
        self.client_ip = "203.0.113.9"


def test_a_connection_is_named_by_its_ids() -> None:
    assert connection_fields(Conn()) == {
        "connection": str(uuid.UUID(int=7)),
        "tenant": "acme",
        "credential": "k_test",
        "ip": "203.0.113.9",
    }


def test_a_connection_that_is_gone_yields_no_fields_and_no_error() -> None:
    conn = Conn()
    proxy = weakref.proxy(conn)
    del conn
    gc.collect()
    assert connection_fields(proxy) == {}


def test_the_filter_replaces_the_websocket_field() -> None:
    record = logging.LogRecord("websockets.server", logging.INFO, __file__, 1, "x", None, None)
    record.websocket = Conn()
    assert ConnectionFields().filter(record)
    assert "websocket" not in record.__dict__
    assert (record.tenant, record.credential) == ("acme", "k_test")
