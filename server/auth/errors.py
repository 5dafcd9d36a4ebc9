"""Why a credential was refused, as an exception that never carries the credential.

Exception tree (one root for the auth package)::

    AuthError            a presented credential was refused (the remote's fault); ``reason``
    AuthConfigError      the server's own auth configuration is unusable (local misuse)

``AuthError`` is raised at the handshake; the hub maps every reason to a plain 401 and writes
``reason`` to the audit log. ``str()`` and ``repr()`` name only the reason, so logging the
exception is always safe: the token, key or secret never reaches the message.
"""

from __future__ import annotations

import enum


class AuthFailure(enum.StrEnum):
    """Stable reason codes for a refused credential (audit log values; do not rename)."""

    MISSING = "missing"  # no credential at all
    MALFORMED = "malformed"  # not shaped like any credential we issue or accept
    BAD_CHECKSUM = "bad_checksum"  # API key whose checksum does not match (typo, truncation)
    WRONG_ENVIRONMENT = "wrong_environment"  # ht_test_ key on a live server, or the reverse
    UNKNOWN = "unknown"  # no such key, or the secret does not match its hash
    REVOKED = "revoked"  # key revoked or rotated away
    EXPIRED = "expired"  # key past expires_at, or JWT past exp (+ leeway)
    NOT_YET_VALID = "not_yet_valid"  # JWT nbf or iat in the future (+ leeway)
    UNSUPPORTED = "unsupported"  # a credential kind this server is not configured to accept
    BAD_ALGORITHM = "bad_algorithm"  # JWT alg not in the server's fixed list (incl. "none")
    BAD_SIGNATURE = "bad_signature"  # JWT signature invalid, or no key of the alg's family
    KEY_IN_HEADER = "key_in_header"  # JWT header carries or points at key material (jku...)
    UNKNOWN_KID = "unknown_kid"  # JWT kid names none of the configured JWKS keys
    BAD_AUDIENCE = "bad_audience"  # JWT aud missing or not the configured audience
    BAD_ISSUER = "bad_issuer"  # JWT iss missing or not the configured issuer
    BAD_CLAIMS = "bad_claims"  # JWT claims missing or ill-typed (exp, iat, sub, tenant, ...)
    FORBIDDEN_ROLE = "forbidden_role"  # JWT role anon / service_role used as a user token
    UNKNOWN_TENANT = "unknown_tenant"  # the credential names a tenant that does not exist
    TENANT_DELETED = "tenant_deleted"  # the credential's tenant was deleted


class AuthError(Exception):
    """A credential was refused. ``reason`` says why; the message never contains the credential.

    ``credential_id`` is set only when a non-secret identifier could be read from the
    credential (an API key id whose checksum matched); it is untrusted client input, useful
    for the audit log, never for a decision.
    """

    def __init__(self, reason: AuthFailure, *, credential_id: str | None = None) -> None:
        super().__init__(f"authentication failed: {reason.value}")
        self.reason = reason
        self.credential_id = credential_id

    def __repr__(self) -> str:
        return f"AuthError({self.reason.value!r})"


class AuthConfigError(ValueError):
    """The server's auth configuration is unusable (short secret, bad JWKS, ...)."""
