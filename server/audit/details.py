"""Keeping secrets out of audit details: by field name and by value shape.

An audit log is exported and read by people; a credential in it would be a leak with a
90-day life. :func:`redact_details` is applied by ``log.append`` to every entry, so a slip
cannot store a secret; :func:`check_details` raises instead, for tests and callers that want
the slip to be loud.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from server.audit.chain import AuditError
from server.logs import REDACTED, redact_tokens

# A field is secret when its last word is one of these (``api_key``, ``refresh_token``,
# ``Authorization``), but not ``key_id`` or ``token_expires``: the last word decides.
_SECRET_WORDS = frozenset(
    {
        "token",
        "tokens",
        "key",
        "keys",
        "apikey",
        "secret",
        "secrets",
        "password",
        "passwd",
        "passphrase",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "jwt",
        "bearer",
        "plaintext",
    }
)
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_MAX_DEPTH = 8


class SecretInDetailsError(AuditError):
    """Audit details carried a field or value that looks like a secret (caller's fault)."""


def is_secret_name(name: str) -> bool:
    """Whether a details field called ``name`` would hold a secret."""
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in _SECRET_WORDS


def redact_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``details`` with secret-named fields and credential-shaped values blanked."""
    return _walk(dict(details or {}), 0, strict=False)  # type: ignore[no-any-return]


def check_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """``details`` unchanged, or :class:`SecretInDetailsError` if anything looks secret."""
    return _walk(dict(details or {}), 0, strict=True)  # type: ignore[no-any-return]


def _walk(value: Any, depth: int, *, strict: bool) -> Any:
    if depth > _MAX_DEPTH:
        raise AuditError("audit details nest too deeply")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise AuditError("audit details keys must be strings")
            if is_secret_name(k):
                if strict:
                    raise SecretInDetailsError(f"details field {k!r} looks secret")
                out[k] = REDACTED
            else:
                out[k] = _walk(v, depth + 1, strict=strict)
        return out
    if isinstance(value, list | tuple):
        return [_walk(v, depth + 1, strict=strict) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        if strict:
            raise SecretInDetailsError("details carry raw bytes")
        return REDACTED
    if isinstance(value, str):
        clean = redact_tokens(value)
        if clean != value and strict:
            raise SecretInDetailsError("a details value looks like a credential")
        return clean
    return value
