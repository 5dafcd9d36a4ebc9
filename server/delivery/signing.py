"""The signature a receiver checks: HMAC-SHA256 over ``"<timestamp>." + body``.

Every delivery carries three headers::

    Hypertab-Id:         al_… / wh_…   the idempotency id: the same event always has the
                                       same id, so a receiver drops a repeat it has seen
    Hypertab-Timestamp:  1767225600    Unix seconds when this attempt was signed
    Hypertab-Signature:  v1=<hex>      HMAC-SHA256(secret, "<timestamp>." + raw body)

A receiver verifies in a few lines (Python; any language with HMAC works the same)::

    expected = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(f"v1={expected}", signature) and abs(time.time() - ts) < 300

Binding the timestamp stops a captured request from being replayed later; binding the raw
body (not a re-serialisation) means the receiver hashes the bytes it got. Pure: no clock,
the caller passes ``timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac

ID_HEADER = "Hypertab-Id"
TIMESTAMP_HEADER = "Hypertab-Timestamp"
SIGNATURE_HEADER = "Hypertab-Signature"
SCHEME = "v1"
TOLERANCE_S = 300
"""How far a receiver should accept a timestamp from its own clock (seconds)."""

MIN_SECRET_BYTES = 16


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Hypertab-Signature`` header value for ``body`` signed at ``timestamp``."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a signing secret has at least {MIN_SECRET_BYTES} bytes")
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def headers(event_id: str, secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """The three delivery headers (plus the JSON content type)."""
    return {
        "Content-Type": "application/json",
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    now: float,
    tolerance: float = TOLERANCE_S,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, ts, body), header)
