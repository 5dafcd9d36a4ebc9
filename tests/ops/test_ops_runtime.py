"""What a running setup shows: log lines that name tenant and connection, and an SDK that
says once when a rate limit makes it wait."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest

from client_sdk import Client, RateLimitWarning
from client_sdk.pacing import Pacer
from server.logs import configure_logging


async def test_connection_log_lines_name_tenant_and_connection(hub: Any, hub_url: str) -> None:
    record, issued = await hub.services.lifecycle.create_tenant("acme", now=time.time())
    buffer = io.StringIO()
    handler = configure_logging("DEBUG", stream=buffer)
    try:
        async with await Client.connect(hub_url, api_key=issued.secret) as client:
            await client.create_table("People", [("Name", "text")])
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    connection_lines = [line for line in lines if line["logger"] == "server.websockets"]
    assert connection_lines, lines
    assert "weakproxy" not in buffer.getvalue()
    # (websockets logs CONNECTING before the connection has its id)
    missing = [
        line
        for line in connection_lines
        if "connection" not in line and "CONNECTING" not in line["msg"]
    ]
    assert not missing, missing
    assert {line.get("tenant") for line in connection_lines} >= {record.id}


async def test_the_sdk_warns_once_when_the_plan_limit_makes_it_wait() -> None:
    pacer = Pacer(ops_per_minute=2)
    past = time.monotonic() - 58.9  # the window frees up in about 1.1 s
    pacer.record(1, past)
    pacer.record(1, past)
    with pytest.warns(RateLimitWarning, match=r"2 ops per minute.*waiting 1\.\d s") as caught:
        await pacer.wait(1)
        pacer.warn(30.0, "again")  # later waits are not reported
    assert len(caught) == 1
