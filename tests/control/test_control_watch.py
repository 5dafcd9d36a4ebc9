"""Revocations made by another process (the CLI) reach a running server's bus at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.auth.errors import AuthError, AuthFailure
from server.auth.revocation import MemoryRevocationBus, RevocationEvent, RevocationKind
from server.control.plane import ControlPlane

PEPPER = b"pepper-" + b"x" * 32
NOW = 1_800_000_000.0
REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0  # generous; the watcher polls every 50 ms


class Inbox:
    def __init__(self) -> None:
        self.events: list[RevocationEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: RevocationEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int) -> list[RevocationEvent]:
        async with asyncio.timeout(WAIT):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, Inbox]]:
    bus = MemoryRevocationBus()
    inbox = Inbox()
    await bus.subscribe(inbox)
    plane = await ControlPlane.open(tmp_path, pepper=PEPPER, bus=bus)
    yield plane, inbox
    await plane.close()


async def test_revocation_by_second_instance_reaches_first_bus(
    tmp_path: Path, server: tuple[ControlPlane, Inbox]
) -> None:
    plane, inbox = server
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    cli = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    try:
        await cli.revoke_key(admin.record.id, now=NOW + 1)
    finally:
        await cli.close()
    (event,) = await inbox.wait_for(1)
    assert (event.kind, event.tenant, event.credential_id, event.reason) == (
        RevocationKind.CREDENTIAL,
        tenant.id,
        admin.record.id,
        "revoked",
    )
    with pytest.raises(AuthError) as info:
        await plane.authenticate_api_key(admin.secret, now=NOW + 2)
    assert info.value.reason is AuthFailure.REVOKED


CLI_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from server.control.plane import ControlPlane

    async def main() -> None:
        plane = await ControlPlane.open(
            Path(sys.argv[1]), pepper=sys.argv[2].encode(), watch=False
        )
        try:
            if sys.argv[3] == "revoke":
                await plane.revoke_key(sys.argv[4], now=1.0)
            elif sys.argv[3] == "rotate":
                await plane.rotate_key(sys.argv[4], now=1.0)
            else:
                await plane.delete_tenant(sys.argv[4], now=1.0)
        finally:
            await plane.close()

    asyncio.run(main())
    """
)


async def run_cli(data_dir: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI_SCRIPT,
        str(data_dir),
        PEPPER.decode(),
        *args,
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()


async def test_revocations_from_a_real_cli_process(
    tmp_path: Path, server: tuple[ControlPlane, Inbox]
) -> None:
    plane, inbox = server
    tenant, admin = await plane.create_tenant("Acme", now=NOW)
    spare = await plane.create_key(tenant.id, "spare", ["tables:read"], created_by="t", now=NOW)
    await run_cli(tmp_path, "revoke", admin.record.id)
    await run_cli(tmp_path, "rotate", spare.record.id)
    await run_cli(tmp_path, "delete-tenant", tenant.id)
    events = await inbox.wait_for(3)
    assert [(e.kind, e.credential_id, e.reason) for e in events] == [
        (RevocationKind.CREDENTIAL, admin.record.id, "revoked"),
        (RevocationKind.CREDENTIAL, spare.record.id, "rotated"),
        (RevocationKind.TENANT, None, "tenant_deleted"),
    ]
    assert all(e.tenant == tenant.id for e in events)


async def test_own_revocations_are_not_published_twice(
    server: tuple[ControlPlane, Inbox],
) -> None:
    plane, inbox = server
    _, admin = await plane.create_tenant("Acme", now=NOW)
    await plane.revoke_key(admin.record.id, now=NOW + 1)
    assert len(inbox.events) == 1  # published directly by revoke_key
    assert plane.watcher is not None
    assert await plane.watcher.poll_once() == 0
    assert len(inbox.events) == 1


async def test_watcher_does_not_replay_history(tmp_path: Path) -> None:
    first = await ControlPlane.open(tmp_path, pepper=PEPPER, watch=False)
    _, admin = await first.create_tenant("Acme", now=NOW)
    await first.revoke_key(admin.record.id, now=NOW)
    await first.close()
    bus = MemoryRevocationBus()
    inbox = Inbox()
    await bus.subscribe(inbox)
    plane = await ControlPlane.open(tmp_path, pepper=PEPPER, bus=bus)
    try:
        assert plane.watcher is not None
        assert plane.watcher.last_seq == 1
        assert await plane.watcher.poll_once() == 0
        assert inbox.events == []
    finally:
        await plane.close()
