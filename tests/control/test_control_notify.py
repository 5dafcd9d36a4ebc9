"""Wake-up sockets: a process that revokes pokes every hub of the data directory."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

from server.control.notify import NotifyListener, notify_dir, poke_all


async def test_poke_wakes_every_listener_and_clears_dead_sockets(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    woken = [asyncio.Event(), asyncio.Event()]
    listeners = [NotifyListener(data_dir, event.set) for event in woken]
    for listener in listeners:
        await listener.start()
    assert stat.S_IMODE(notify_dir(data_dir).stat().st_mode) == 0o700
    assert all(stat.S_IMODE(x.path.stat().st_mode) == 0o600 for x in listeners)
    dead = notify_dir(data_dir) / "gone.sock"
    with socket.socket(socket.AF_UNIX) as sock:  # bound, never listening: refuses
        sock.bind(str(dead))
    assert await asyncio.to_thread(poke_all, data_dir) == 2
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in woken)), 5)
    assert not dead.exists()
    for listener in listeners:
        await listener.stop()
    assert list(notify_dir(data_dir).glob("*.sock")) == []
    assert await asyncio.to_thread(poke_all, data_dir) == 0
