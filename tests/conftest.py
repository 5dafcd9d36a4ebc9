"""Fixtures shared by every test package.

``redis_url``: a real Redis. A private ``redis-server`` on a free port when the binary
exists, else ``HYPERTAB_TEST_REDIS_URL``. Without either, the test is skipped on a
developer machine and fails under CI (``CI=true``), where Redis is required.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netutil import PrivateRedis, skip_or_fail


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server for this test session."""
    if shutil.which("redis-server") is not None:
        redis = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
        try:
            yield redis.url
        finally:
            redis.stop()
        return
    url = os.environ.get("HYPERTAB_TEST_REDIS_URL")
    if url:
        yield url
        return
    skip_or_fail("Redis needed: no redis-server binary and HYPERTAB_TEST_REDIS_URL unset")


# --- a real hub on a free port ------------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> Any:
    """A running hub (real sockets, real SQLite files under ``tmp_path``)."""
    from server.app import HypertabServer
    from server.config import Config
    from server.secrets import generate_key_file

    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    generate_key_file(tmp_path / "data" / "master.keys")  # as `hypertab serve --demo` does
    server = HypertabServer(Config(data_dir=tmp_path / "data", port=0))
    server.admission.enabled = False  # rate limits off here; tests/limits turns them on
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def hub_url(hub: Any) -> str:
    """The WebSocket URL of the running ``hub``."""
    return f"ws://127.0.0.1:{hub.port}/v1/ws"


@pytest.fixture
async def tenant(hub: Any) -> Any:
    """A fresh tenant on ``hub``: ``(tenant_record, api_key_plaintext)`` (all scopes),
    provisioned like a signup: database, data key, admin key, audit entry."""
    record, issued = await hub.services.lifecycle.create_tenant("acme", now=time.time())
    return record, issued.secret


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """Give every test the root logger as it found it.

    A test that configures DEBUG logging would otherwise leave it on for the rest of the
    run, and every later test would pay for formatting aiosqlite's per-statement records.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
