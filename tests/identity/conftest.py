"""Fixtures of the identity tests: a hub that also accepts JWTs (zero leeway)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from identity_helpers import ISSUER, JWT_SECRET, master_key_file

from server.app import HypertabServer
from server.config import Config


@pytest.fixture
async def jwt_hub(tmp_path: Path) -> AsyncIterator[HypertabServer]:
    """A running hub with HS256 JWTs enabled, issuer checked, no leeway."""
    data = tmp_path / "jwt-data"
    master_key_file(data)
    server = HypertabServer(
        Config(data_dir=data, port=0, jwt_secret=JWT_SECRET, jwt_issuer=ISSUER, jwt_leeway=0.0)
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def jwt_url(jwt_hub: HypertabServer) -> str:
    """The WebSocket URL of ``jwt_hub``."""
    return f"ws://127.0.0.1:{jwt_hub.port}/v1/ws"
