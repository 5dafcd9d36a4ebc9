"""Fixtures for the browser tests: real Chromium (Debian's, driven by Playwright), a real hub.

One browser per test session (launching Chromium costs about a second); every test gets
fresh browser contexts, so pages share no storage. Chromium is Debian's ``/usr/bin/chromium``
(``HYPERTAB_CHROMIUM`` overrides): Playwright cannot download its own browsers here. Without
it the browser tests skip on a developer machine and FAIL under ``CI=true``.

The hub runs in the test's event loop with rate limits on (the tenant is on the team plan,
so the suite's edits fit) and is restartable on the same port and data directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from server.app import HypertabServer
from server.auth.principal import Plan
from server.config import Config
from server.secrets import generate_key_file

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home at start-up and this closed network refuses it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A response fulfilled by Playwright (the CSP test's injected HTML) has no address, so
    # Chromium counts the page as public and would block its WebSocket to 127.0.0.1. A page
    # the hub serves itself is never affected: it and its WebSocket share one address.
    "--disable-features=LocalNetworkAccessChecks",
]


def chromium_path() -> str | None:
    """Debian's Chromium, or ``$HYPERTAB_CHROMIUM``; ``None`` when absent."""
    configured = os.environ.get("HYPERTAB_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def need(what: str, present: bool) -> None:
    """Skip (developer machine) or fail (``CI=true``) when ``what`` is missing."""
    if present:
        return
    message = f"{what} needed for the browser tests (.ci/run installs it: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for the whole session."""
    path = chromium_path()
    need("Chromium", path is not None)
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        need("The playwright package", False)
        raise
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class LiveHub:
    """A hub on a fixed port that a test can stop and start again."""

    data_dir: Path
    server: HypertabServer
    port: int = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = HypertabServer(Config(data_dir=self.data_dir, port=self.port))
        await self.server.start()
        self.port = self.server.port

    async def stop(self) -> None:
        await self.server.stop()

    async def new_key(self, tenant: str, scopes: list[str], name: str = "page") -> Any:
        """A fresh API key of ``tenant`` (the ``IssuedKey``: ``.secret``, ``.record.id``)."""
        control = self.server.control
        assert control is not None
        return await control.create_key(tenant, name, scopes, created_by="tests", now=time.time())


@pytest_asyncio.fixture(loop_scope="session")
async def live_hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    """A running hub with real SQLite files under ``tmp_path`` and rate limits on."""
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    hub = LiveHub(data, HypertabServer(Config(data_dir=data, port=0)))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def team(live_hub: LiveHub) -> tuple[Any, str]:
    """A tenant on the team plan and its admin key: ``(record, key)``."""
    lifecycle = live_hub.server.services.lifecycle
    assert lifecycle is not None
    record, issued = await lifecycle.create_tenant("acme", Plan.TEAM, now=time.time())
    return record, issued.secret


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: ``artifacts/`` at the repository root (gitignored)."""
    path = Path(__file__).resolve().parents[2] / "artifacts"
    path.mkdir(exist_ok=True)
    return path
