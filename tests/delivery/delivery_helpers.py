"""A real HTTP receiver on 127.0.0.1 and a real server process, for delivery tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from serve_process import ServeProcess

from server.delivery import signing

SECRET = "receiver-test-secret-0123456789"


@dataclass
class Received:
    """One request the receiver got."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["hypertab-id"]

    def signature_ok(self, secret: str = SECRET) -> bool:
        """What a receiver does (docs/alerts.md), in a few lines."""
        return signing.verify(
            secret.encode(),
            self.headers["hypertab-timestamp"],
            self.body,
            self.headers["hypertab-signature"],
            now=time.time(),
        )


class Receiver:
    """A webhook receiver: records every POST, answers ``status`` (200 by default).

    ``stop()`` takes it down (connections refused), ``start()`` brings it back on the same
    port. Requests answered with a non-2xx status are recorded in ``rejected``.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.status = 200
        self.received: list[Received] = []
        self.rejected: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.on_request: Callable[[Received], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                got = Received(
                    time.time(),
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                status = receiver.status
                with receiver._lock:
                    (receiver.received if 200 <= status < 300 else receiver.rejected).append(got)
                if receiver.on_request is not None:
                    receiver.on_request(got)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        with self._lock:
            return list(self.received)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without ``HYPERTAB_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env.update(extra)
    return env


def alert_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    """Settings for a webhook alert sink at ``receiver`` with a short retry schedule."""
    return {
        "HYPERTAB_ALERT_WEBHOOK_URL": receiver.url,
        "HYPERTAB_ALERT_WEBHOOK_SECRET": SECRET,
        "HYPERTAB_DELIVERY_RETRY_BASE": "0.2",
        "HYPERTAB_DELIVERY_RETRY_MAX_DELAY": "1",
        "HYPERTAB_DELIVERY_MAX_ATTEMPTS": "100",
        "HYPERTAB_DELIVERY_TIMEOUT": "2",
        **extra,
    }


def hypertab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real ``hypertab`` command."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


HubProcess = ServeProcess
"""``hypertab serve`` in a subprocess on a free port, with ``env`` (tests/serve_process.py)."""


# --- WebSocket helpers (raw connections, as a client in any language would make) ---------


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def open_raw(url: str, key: str) -> Any:
    """An accepted raw connection (after its welcome)."""
    from websockets.asyncio.client import connect

    from protocol.codec import MSGPACK, codec_for
    from protocol.messages import Welcome

    conn = await connect(
        url, additional_headers=bearer(key), subprotocols=[MSGPACK], compression=None,  # type: ignore[list-item]
        open_timeout=20,
    )  # fmt: skip
    welcome = codec_for(MSGPACK).decode_server(await conn.recv(decode=False))
    assert isinstance(welcome, Welcome)
    return conn


async def refused_status(url: str, key: str) -> int:
    """The HTTP status of a refused handshake (fails if it was accepted)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        conn = await connect(url, additional_headers=bearer(key), open_timeout=20)
    except InvalidStatus as exc:
        return int(exc.response.status_code)
    await conn.close()
    raise AssertionError("the handshake was accepted")


def run_cli(*argv: str) -> tuple[int, str, str]:
    """The ``hypertab`` command in this process (no interpreter start-up): exit code,
    stdout, stderr. Call it through ``asyncio.to_thread`` (it runs its own event loop)."""
    import contextlib
    import io

    from server.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
