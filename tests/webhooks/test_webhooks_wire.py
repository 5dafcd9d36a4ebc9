"""Webhooks managed over the WebSocket by a ``keys:admin`` credential of the tenant."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from delivery_helpers import Receiver

from client_sdk import Client
from client_sdk.errors import ServerError
from protocol.messages import Ok
from protocol.webhooks import (
    WebhookAdd,
    WebhookAdded,
    WebhookList,
    WebhookListing,
    WebhookRemove,
    WebhookTest,
    WebhookTested,
)
from server.app import HypertabServer
from server.auth.principal import Scope
from server.config import Config
from server.secrets.keyring import generate_key_file


async def test_a_tenant_admin_manages_its_webhooks_over_the_wire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERTAB_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")
    data = tmp_path / "data"
    await asyncio.to_thread(data.mkdir)
    await asyncio.to_thread(generate_key_file, data / "master.keys")
    receiver = Receiver()
    receiver.start()
    server = HypertabServer(Config(data_dir=data, port=0))
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/v1/ws"
    try:
        assert server.services.lifecycle is not None and server.control is not None
        tenant, admin = await server.services.lifecycle.create_tenant("acme", now=time.time())
        writer = await server.control.create_key(
            tenant.id, "writer", [Scope.TABLES_READ, Scope.TABLES_WRITE, Scope.SCHEMA_WRITE],
            created_by="test", now=time.time(),
        )  # fmt: skip
        async with await Client.connect(url, api_key=writer.secret, reconnect=False) as client:
            with pytest.raises(ServerError) as refused:
                await client.request(lambda rid: WebhookAdd(id=rid, url=receiver.url))
            assert refused.value.code == "forbidden"  # keys:admin only
            table = await client.create_table("Orders", [("Total", "number")])
        async with await Client.connect(url, api_key=admin.secret, reconnect=False) as client:
            for bad in ("https://10.0.0.1/hook", "http://example.com/hook"):
                with pytest.raises(ServerError) as refused:
                    await client.request(lambda rid, bad=bad: WebhookAdd(id=rid, url=bad))
                assert refused.value.code == "webhook_refused"
            added: Any = await client.request(
                lambda rid: WebhookAdd(id=rid, url=receiver.url, table="Orders")
            )
            assert isinstance(added, WebhookAdded) and added.secret.startswith("whsec_")
            assert added.secret not in repr(added)
            every, every_secret = await client.webhooks.add(receiver.url)  # the SDK's way
            assert every.table is None and every_secret != added.secret
            await client.webhooks.remove(every.id)
            orders = await client.table("Orders")
            await orders.insert({"Total": 12})
            got = await asyncio.to_thread(receiver.wait_for, 1, 10.0)
            assert got[0].signature_ok(added.secret)
            assert got[0].json["table"] == table.id and got[0].json["from_version"] == 2
            tested: Any = await client.request(
                lambda rid: WebhookTest(id=rid, webhook=added.webhook.id)
            )
            assert isinstance(tested, WebhookTested) and tested.status == 200
            assert receiver.received[-1].json["type"] == "test"
            listing: Any = await client.request(lambda rid: WebhookList(id=rid))
            assert isinstance(listing, WebhookListing)
            assert [h.id for h in listing.webhooks] == [added.webhook.id]
            assert listing.webhooks[0].delivered_batches == 1
            assert [h.id for h in await client.webhooks.list()] == [added.webhook.id]
            assert (await client.webhooks.test(added.webhook.id)).status == 200
            removed = await client.request(
                lambda rid: WebhookRemove(id=rid, webhook=added.webhook.id)
            )
            assert isinstance(removed, Ok)
            with pytest.raises(ServerError) as gone:
                await client.request(lambda rid: WebhookRemove(id=rid, webhook=added.webhook.id))
            assert gone.value.code == "unknown_webhook"
            await orders.insert({"Total": 13})
            await asyncio.sleep(0.3)
            assert len(receiver.received) == 3  # the change and two tests; none after removal
    finally:
        await server.stop()
        receiver.stop()
