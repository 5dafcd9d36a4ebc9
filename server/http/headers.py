"""Strict security headers for every HTTP response the hub sends (pure: no I/O).

How it works
------------
:func:`security_headers` returns the full set for one response. Without a nonce the CSP is
``default-src 'none'`` plus the navigation locks (nothing may load, frame or re-base the
response): right for API answers, 401/403 pages, health checks and the WebSocket upgrade's
error responses. A served HTML page asks for a fresh :func:`new_nonce` per response; the CSP
then also allows scripts and styles carrying that nonce and connections to the page's own
origin (its WebSocket). A nonce is never reused across responses, or it stops protecting
anything: an attacker who learns one would inject a script carrying it.

HSTS is sent only on responses that travelled over TLS: the server's own (``--tls-cert``) or
a trusted proxy's (``X-Forwarded-Proto: https`` from one of ``trusted_proxies``). RFC 6797
forbids it over plain HTTP, where an attacker could inject or strip it anyway.
"""

from __future__ import annotations

import re
import secrets

_NONCE_BYTES = 16  # 128 bits, the CSP spec's recommended minimum
_NONCE_SHAPE = re.compile(r"[A-Za-z0-9+/_-]{22,}={0,2}")

_BASE_CSP = (
    "default-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
)

_STATIC: tuple[tuple[str, str], ...] = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)

HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload")


def new_nonce() -> str:
    """A fresh CSP nonce: 128 random bits, base64url. One per response, never reused."""
    return secrets.token_urlsafe(_NONCE_BYTES)


def content_security_policy(nonce: str | None = None) -> str:
    """The ``Content-Security-Policy`` value: locked down, or for a page with ``nonce``.

    Raises ``ValueError`` for a nonce that is not base64 of at least 128 bits, since a
    malformed one could inject directives into the policy.
    """
    directives = list(_BASE_CSP)
    if nonce is not None:
        if not _NONCE_SHAPE.fullmatch(nonce):
            raise ValueError("a CSP nonce must be base64 of at least 128 random bits")
        directives += [
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "connect-src 'self'",
            # The page never assigns HTML strings: with Trusted Types required, a stray
            # innerHTML/outerHTML/document.write of cell text throws instead of parsing.
            "require-trusted-types-for 'script'",
        ]
    return "; ".join(directives)


def security_headers(nonce: str | None = None, *, https: bool = True) -> dict[str, str]:
    """Every security header for one HTTP response, name to value, in a stable order.

    Pass the response's nonce when it is an HTML page with inline scripts or styles (each
    of which must carry ``nonce="…"``); leave it out for everything else. ``https=False``
    (the response goes out over plain HTTP) leaves out HSTS.
    """
    headers = {"Content-Security-Policy": content_security_policy(nonce)}
    headers.update(_STATIC)
    if https:
        headers[HSTS[0]] = HSTS[1]
    return headers
