"""A running hub dispatches every client message type to the handler its row names."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Error, Welcome
from protocol.secrets import SecretSet
from server.hub.messages import TABLE, misregistered
from server.hub.session import Session


async def test_the_features_register_the_handlers_the_table_names(hub: Any) -> None:
    handlers = hub.services.handlers
    assert misregistered(handlers) == []
    unhandled = [row.kind.__name__ for row in TABLE if row.kind not in handlers]
    assert unhandled == []  # a type the table lists but nothing answers


async def test_a_failed_request_is_logged_with_its_ids_and_without_its_body(
    hub: Any, hub_url: str, tenant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    record, key = tenant

    async def broken(session: Session, message: SecretSet) -> None:
        raise RuntimeError("a handler bug")

    hub.services.handlers[SecretSet] = broken
    codec = codec_for(MSGPACK)
    caplog.set_level(logging.ERROR, logger="server.hub.session")
    async with connect(
        hub_url, additional_headers={"Authorization": f"Bearer {key}"}, subprotocols=[MSGPACK]
    ) as conn:
        welcome = codec.decode_server(await conn.recv(decode=False))
        assert isinstance(welcome, Welcome)
        await conn.send(codec.encode(SecretSet(id=7, name="db", kind="env_var", value="hunter2")))
        answer = codec.decode_server(await asyncio.wait_for(conn.recv(decode=False), 10))
    assert isinstance(answer, Error) and (answer.code, answer.id) == ("internal", 7)
    [line] = [r for r in caplog.records if r.getMessage() == "request failed"]
    fields = line.__dict__
    assert (fields["tenant"], fields["session"]) == (record.id, welcome.session)
    assert fields["connection"] and fields["type"] == "SecretSet"
    assert "hunter2" not in repr(fields)
