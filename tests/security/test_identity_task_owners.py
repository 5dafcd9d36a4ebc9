"""Every background task the hub starts has an owner that handles its failure.

The case that was lost: the CLI revokes a key while Redis is down; its poke makes the hub
poll control.db in a background task, whose publish to Redis fails. The exception used to
be left in the task ("Task exception was never retrieved", at some later GC) and the
watcher had already consumed the change.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from attack_helpers import eventually
from sec_identity_helpers import cli, key_id, open_raw, private_redis

from protocol.errors import CloseCode
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file


async def test_a_failed_poke_poll_during_a_redis_outage_is_owned_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    with private_redis(tmp_path / "redis") as redis:
        server = HypertabServer(Config(data_dir=data, port=0, redis_url=redis.url))
        server.admission.enabled = False
        await server.start()
        try:
            assert server.services.lifecycle is not None and server.control is not None
            record, _ = await server.services.lifecycle.create_tenant("acme", now=time.time())
            issued = await server.control.create_key(
                record.id, "victim", ["tables:read"], created_by="test", now=time.time()
            )
            conn, _ = await open_raw(f"ws://127.0.0.1:{server.port}/v1/ws", issued.secret)
            redis.stop()  # the outage
            caplog.set_level(logging.ERROR, logger="server.tasks")
            result = await asyncio.to_thread(
                cli, "key", "revoke", key_id(issued.secret), "--data-dir", str(data)
            )
            assert result.returncode == 0, result.stderr
            # This node still closes the socket: the event is delivered locally first.
            await asyncio.wait_for(conn.wait_closed(), 30)
            assert conn.close_code == CloseCode.CREDENTIAL_REVOKED

            def owned() -> bool:
                gc.collect()  # an orphaned task's exception is reported when it is collected
                return bool(unretrieved) or any(
                    "control-db poll" in r.getMessage() for r in caplog.records
                )

            await eventually(owned)
            gc.collect()
            assert unretrieved == [], [c.get("message") for c in unretrieved]
            failed = [r for r in caplog.records if "control-db poll" in r.getMessage()]
            assert failed and "ConnectionError" in failed[0].getMessage()
            # (The test's own websockets client may log its request at DEBUG; the server not.)
            server_text = "\n".join(
                r.getMessage() for r in caplog.records if r.name.startswith("server")
            )
            assert issued.secret not in server_text
        finally:
            await server.stop()
            loop.set_exception_handler(previous)
    assert server.tasks.failures >= 1 and len(server.tasks) == 0
