"""The hub's cached key reads never outlive a revocation (real sockets, real control.db).

A key that has just opened connections (so its lookup is cached) is revoked from another
connection to control.db, the way ``hypertab key revoke`` in another process does it: its
open socket is closed with 4003 and the very next handshake with it is refused.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from identity_helpers import bearer, open_raw, refusal

from protocol.errors import CloseCode
from server.app import HypertabServer
from server.config import load_pepper
from server.control.plane import ControlPlane


async def test_revoked_key_is_refused_at_the_next_handshake_and_its_socket_closed(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, _ = tenant
    assert hub.control is not None
    issued = await hub.control.create_key(
        record.id, "victim", ["tables:read"], created_by="test", now=time.time()
    )
    for _ in range(2):  # the second handshake is served from the cache
        conn, welcome = await open_raw(hub_url, headers=bearer(issued.secret))
        assert welcome.tenant == record.id
        await conn.close()
    victim, _ = await open_raw(hub_url, headers=bearer(issued.secret))
    data_dir = hub.config.data_dir
    cli = await ControlPlane.open(data_dir, pepper=load_pepper(data_dir), watch=False)
    try:
        await cli.revoke_key(issued.record.id, now=time.time())
    finally:
        await cli.close()
    status, _ = await refusal(hub_url, headers=bearer(issued.secret))
    assert status == 401
    await asyncio.wait_for(victim.wait_closed(), 10)
    assert victim.close_code == CloseCode.CREDENTIAL_REVOKED
