"""Helpers of the ``test_identity_*`` security tests: a Redis of their own, raw sockets,
the CLI in a subprocess, waiting without sleeps.

(Named apart from ``tests/identity/identity_helpers.py``: test directories have no
``__init__.py``, so two helper modules of one name would shadow each other.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attack_helpers import bearer
from netutil import PrivateRedis
from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Welcome

MP = codec_for(MSGPACK)


async def open_raw(url: str, token: str) -> tuple[ClientConnection, Welcome]:
    """An accepted msgpack connection for ``token`` and its welcome."""
    conn = await connect(
        url,
        additional_headers=bearer(token),
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        open_timeout=20,
    )
    welcome = MP.decode_server(await conn.recv(decode=False))
    assert isinstance(welcome, Welcome)
    return conn, welcome


def key_id(key: str) -> str:
    """The public id part of an API key."""
    return key.split("_")[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``hypertab ARGS`` in another process (no inherited ``HYPERTAB_*`` settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    script = Path(sys.executable).parent / "hypertab"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A :class:`PrivateRedis`, always stopped at the end."""
    redis = PrivateRedis(workdir).start()
    try:
        yield redis
    finally:
        redis.stop()


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return path.stat().st_mode & 0o777
