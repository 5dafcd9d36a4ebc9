"""Fixtures shared by every test package.

``redis_url``: a real Redis. A private ``redis-server`` on a free port when the binary
exists, else ``HYPERTAB_TEST_REDIS_URL``. Without either, the test is skipped on a
developer machine and fails under CI (``CI=true``), where Redis is required.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server for this test session."""
    binary = shutil.which("redis-server")
    if binary is not None:
        port = free_port()
        workdir: Path = tmp_path_factory.mktemp("redis")
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, 10.0)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return
    url = os.environ.get("HYPERTAB_TEST_REDIS_URL")
    if url:
        yield url
        return
    message = "Redis needed: no redis-server binary and HYPERTAB_TEST_REDIS_URL unset"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


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
