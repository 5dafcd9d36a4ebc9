"""The page's HTTP side without a browser: routes, nonces, static files, the Origin rule."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from protocol.codec import AUTH_SUBPROTOCOL_PREFIX, JSON
from server.auth.origins import same_origin
from server.cli.serve import page_url


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(get, url)


def nonce_of(csp: str) -> str:
    match = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", csp)
    assert match, csp
    return match.group(1)


async def test_page_has_a_fresh_nonce_on_every_response(hub: Any) -> None:
    base = f"http://127.0.0.1:{hub.port}"
    seen = set()
    for path in ("/", "/t/some_table-1", "/"):
        status, headers, body = await fetch(base + path)
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        csp = headers["Content-Security-Policy"]
        nonce = nonce_of(csp)
        assert f"style-src 'nonce-{nonce}'" in csp
        assert "connect-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        html = body.decode()
        tags = re.findall(r"<(script|link|style)\b[^>]*>", html)
        assert tags, "the page loads its script and stylesheet"
        for tag in re.findall(r"<(?:script|link|style)\b[^>]*>", html):
            assert f'nonce="{nonce}"' in tag, tag
            src = re.search(r'(?:src|href)="([^"]*)"', tag)
            assert src and src.group(1).startswith("/static/"), "everything from the hub"
        assert "{{nonce}}" not in html
        seen.add(nonce)
    assert len(seen) == 3


async def test_static_files_and_unknown_paths(hub: Any) -> None:
    base = f"http://127.0.0.1:{hub.port}"
    status, headers, body = await fetch(base + "/static/hypertab.mjs")
    assert status == 200
    assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert b"export class Client" in body
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = await fetch(base + "/static/app.css")
    assert (status, headers["Content-Type"]) == (200, "text/css; charset=utf-8")
    for path in (
        "/static/index.html",  # the page is served only with its nonce
        "/static/../server/app.py",
        "/static/%2e%2e/pyproject.toml",
        "/static/",
        "/static/nope.mjs",
        "/t/",
        "/t/not%20an%20id",
        "/t/a/b",
        "/index.html",
    ):
        status, headers, body = await fetch(base + path)
        assert status == 404, path
        assert b"<" not in body
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_the_pages_own_origin_needs_no_allowlist(hub: Any, tenant: Any) -> None:
    record, key = tenant
    url = f"ws://127.0.0.1:{hub.port}/v1/ws"
    browser = [JSON, AUTH_SUBPROTOCOL_PREFIX + key]
    conn = await connect(url, subprotocols=browser, origin=f"http://127.0.0.1:{hub.port}")  # type: ignore[arg-type]
    assert conn.subprotocol == JSON
    await conn.close()
    other = f"http://localhost:{hub.port}"  # another origin, though the same server
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, subprotocols=browser, origin=other)  # type: ignore[arg-type]
    response = refused.value.response
    assert response.status_code == 403
    body = (response.body or b"").decode()
    assert body.startswith("Origin not allowed.\n")
    assert f"hypertab tenant origins {record.id} --add {other}" in body
    assert key not in body


def test_same_origin_rule() -> None:
    assert same_origin("http://127.0.0.1:8765", "127.0.0.1:8765")
    assert same_origin("https://sheets.example.com", "sheets.example.com")
    assert same_origin("https://sheets.example.com", "sheets.example.com:443")
    assert same_origin("http://[::1]:8765", "[::1]:8765")
    assert same_origin("http://a.example", "A.EXAMPLE")
    assert not same_origin("http://127.0.0.1:8765", "127.0.0.1:8766")
    assert not same_origin("http://127.0.0.1:8765", None)
    assert not same_origin("https://sheets.example.com", "sheets.example.com:80")
    assert not same_origin("https://sheets.example.com.evil.net", "sheets.example.com")
    assert not same_origin("null", "null")
    assert not same_origin("http://127.0.0.1:8765/", "127.0.0.1:8765")


def test_serve_prints_the_page_of_the_hub() -> None:
    assert page_url("ws://127.0.0.1:8765/v1/ws") == "http://127.0.0.1:8765/"
    assert page_url("ws://[::1]:9000/v1/ws") == "http://[::1]:9000/"
