"""The JavaScript client's own tests, run by Node's test runner (``node --test``).

``js/units.test.mjs`` covers the pure parts (pacer, TSV, typed input, errors);
``js/client.test.mjs`` drives ``hypertab.mjs`` against this test's real hub with Node's
built-in WebSocket. Node is required like Chromium: skipped on a developer machine without
it, a failure under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import need
from fake_peer import SkipsAVersion
from websockets.asyncio.server import serve

from protocol.codec import JSON, codec_for
from server.app import HypertabServer
from server.auth.principal import Plan
from server.config import Config
from server.secrets import generate_key_file

pytestmark = pytest.mark.asyncio(loop_scope="session")

JS = Path(__file__).parent / "js"


async def node_test(script: str, env: dict[str, str] | None = None) -> None:
    node = shutil.which("node")
    need("Node.js (v20+)", node is not None)
    assert node is not None
    # The hub runs in this event loop: wait for Node without blocking it.
    proc = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        "--no-warnings",
        "--test",
        "--test-reporter=dot",
        str(JS / script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    print(text)


async def test_js_units() -> None:
    await node_test("units.test.mjs")


async def test_js_client_resubscribes_after_a_skipped_version() -> None:
    peer = SkipsAVersion(codec_for(JSON))
    async with serve(peer, "127.0.0.1", 0, subprotocols=[JSON]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        await node_test("gap.test.mjs", {"HYPERTAB_URL": f"ws://127.0.0.1:{port}/v1/ws"})
    assert peer.resubscribed_since == [1]


async def test_js_client_against_the_hub(live_hub: Any, team: Any) -> None:
    _, key = team
    await node_test("client.test.mjs", {"HYPERTAB_URL": live_hub.ws_url, "HYPERTAB_KEY": key})


JWT_SECRET = "a-test-secret-of-at-least-32-bytes!!"


async def test_js_client_refreshes_a_jwt_in_band(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    server = HypertabServer(Config(data_dir=data, port=0, jwt_secret=JWT_SECRET, jwt_leeway=0.0))
    await server.start()
    try:
        lifecycle = server.services.lifecycle
        assert lifecycle is not None
        record, _ = await lifecycle.create_tenant("jwt", Plan.TEAM, now=time.time())
        await node_test(
            "refresh.test.mjs",
            {
                "HYPERTAB_URL": f"ws://127.0.0.1:{server.port}/v1/ws",
                "HYPERTAB_JWT_SECRET": JWT_SECRET,
                "HYPERTAB_TENANT": record.id,
            },
        )
    finally:
        await server.stop()
