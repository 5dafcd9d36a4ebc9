"""Logs never carry a credential: end to end through ``hypertab serve``, and in process when
an exception's text carries the key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.logs import configure_logging

JWT_SECRET = "0123456789abcdef0123456789abcdef-test-only"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    """An HS256 token."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def _cli(data: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "hypertab"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    return subprocess.run(
        [*argv, *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )


def _serve(data: Path, port_file: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    script = Path(sys.executable).parent / "hypertab"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    return subprocess.Popen(
        [*argv, "serve", "--port", "0", "--port-file", str(port_file), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def _refused(url: str, credential: str) -> int:
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {credential}"}):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_served_logs_never_carry_a_revoked_key_or_a_jwt(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env.update(HYPERTAB_JWT_SECRET=JWT_SECRET, HYPERTAB_LOG_LEVEL="DEBUG")
    data = tmp_path / "data"
    made = json.loads(_cli(data, "tenant", "create", "acme", "--json", env=env).stdout)
    tenant, key = made["tenant"]["id"], made["key"]
    _cli(data, "key", "revoke", key["id"], env=env)
    port_file = tmp_path / "port"
    proc = _serve(data, port_file, env)
    # Drain stderr while the server runs: at DEBUG it writes tens of KB a second, and a
    # full pipe would block the server mid-handshake.
    chunks: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: chunks.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        while not port_file.exists():
            assert proc.poll() is None, "server exited"
            await asyncio.sleep(0.05)
        url = f"ws://127.0.0.1:{port_file.read_text().strip()}/v1/ws"
        now = int(time.time())
        expired = make_jwt({"sub": "u1", "tenant": tenant, "exp": now - 3600, "iat": now - 7200})
        forged = make_jwt({"sub": "u1", "tenant": tenant, "exp": now + 3600}, "x" * 40)
        assert await _refused(url, key["secret"]) == 401
        assert await _refused(url, expired) == 401
        assert await _refused(url, forged) == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    stderr = "".join(chunks)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    refused = [entry for entry in lines if entry.get("msg") == "handshake refused"]
    reasons = [entry["reason"] for entry in refused]
    assert reasons[0] == "revoked" and reasons[2] == "bad_signature" and len(reasons) == 3
    secret_part = key["secret"].rsplit("_", 1)[-1]
    for credential in (key["secret"], secret_part, expired, forged):
        assert credential not in stderr
        for segment in credential.split(".")[1:]:  # JWT payload and signature
            assert segment not in stderr


async def test_an_exception_carrying_a_key_is_logged_redacted(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant

    async def broken(token: str | None, *, now: float) -> Any:
        raise RuntimeError(f"control store unreachable while checking {token}")

    hub.control.authenticate = broken
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = configure_logging("DEBUG", stream=buffer)
    try:
        try:
            async with connect(hub_url, additional_headers={"Authorization": f"Bearer {key}"}):
                raise AssertionError("the handshake should fail")
        except InvalidStatus as exc:
            response = exc.response
    finally:
        root.removeHandler(handler)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert response.status_code == 500
    body = response.body.decode() if response.body else ""
    assert "Traceback" not in body and "control store" not in body
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    text = buffer.getvalue()
    assert "RuntimeError" in text  # the failure is logged ...
    assert key not in text and key.rsplit("_", 1)[-1] not in text  # ... without the key
    assert all(json.loads(line) for line in text.splitlines())
