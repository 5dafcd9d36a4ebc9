"""The WebSocket handshake gate: who may upgrade, decided before any tenant database opens.

How it works
------------
:meth:`HandshakeGate.check` runs in ``process_request`` for ``/v1/ws`` and returns either the
verified :class:`Principal` or a :class:`Refusal` (status + fixed body), in this order:

1. A query string: 400. It is never parsed: a token put there must not be half-accepted,
   and the websockets debug log is filtered (:class:`HandshakeLogFilter`) so it is never
   written either (nor are ``Authorization`` values or bearer subprotocol entries).
2. An ``Origin`` that is not a serialised http(s) origin (``null``, paths, other schemes):
   403, before the credential is even looked at.
3. The credential, from ``Authorization: Bearer`` or else a single ``hypertab.bearer.<token>``
   ``Sec-WebSocket-Protocol`` entry (browsers cannot set headers; the server echoes only the
   encoding protocol, never this entry). Any :class:`AuthError` - unknown, revoked, expired,
   wrong environment, unknown or deleted tenant, bad JWT - gives the *same* 401 and body; the
   reason goes to the log and to the ``on_failure`` hooks only.
4. A browser ``Origin`` must be the hub's own (the page it serves) or be on the server-wide
   list or the tenant's list: else 403, whose body names the command that adds it.
5. The principal's live connections must be under the cap: else 429.

Only the control plane is read; tenant databases are opened after the upgrade, by sessions.
"""

from __future__ import annotations

import enum
import http
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from websockets.datastructures import Headers

from protocol.codec import AUTH_SUBPROTOCOL_PREFIX
from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.origins import (
    InvalidOrigin,
    is_origin,
    normalize_origin,
    origin_allowed,
    same_origin,
)
from server.auth.principal import Principal, TenantId

log = logging.getLogger(__name__)

AuthFailureHook = Callable[[str, "str | None", "str | None"], None]
"""Called as ``hook(reason, ip, credential_id)`` for every refused handshake.

``reason`` is an :class:`AuthFailure` value or one of :class:`GateReason`; ``credential_id``
is a public key id (never a secret) when one could be read. Hooks must not block.
"""


class GateReason(enum.StrEnum):
    """Refusals that are not about the credential itself."""

    TOKEN_IN_QUERY = "token_in_query"  # noqa: S105 - any query string on the WebSocket path
    BAD_ORIGIN = "bad_origin"  # Origin header that is not an http(s) origin (incl. null)
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"  # well formed, but on no allowlist
    TOO_MANY_CONNECTIONS = "too_many_connections"  # principal at its connection cap
    AMBIGUOUS = "ambiguous_credential"  # several Authorization headers or bearer entries


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP answer to a refused handshake. ``reason`` is for logs and hooks only."""

    status: http.HTTPStatus
    body: str
    reason: str


UNAUTHORIZED_BODY = "Unauthorized.\n"
_QUERY = Refusal(
    http.HTTPStatus.BAD_REQUEST,
    "No query string: send the credential in a header.\n",
    GateReason.TOKEN_IN_QUERY,
)
_ORIGIN = "Origin not allowed.\n"


def origin_hint(tenant: TenantId, origin: str) -> str:
    """The 403 body for a well-formed origin on no allowlist: how an admin adds it.

    Sent only after the credential checked out, so it reveals nothing to a stranger;
    ``origin`` passed :func:`is_origin` (no spaces, quotes or newlines)."""
    return (
        f"{_ORIGIN}Allow it with: hypertab tenant origins {tenant} --add {origin}\n"
        "(or list it in HYPERTAB_ALLOWED_ORIGINS for every tenant).\n"
    )


_CAP = Refusal(
    http.HTTPStatus.TOO_MANY_REQUESTS, "Too many connections.\n", GateReason.TOO_MANY_CONNECTIONS
)


class Authenticator(Protocol):
    """What the gate needs of the control plane."""

    async def authenticate(self, token: str | None, *, now: float) -> Principal:
        """The principal for ``token``, or :class:`AuthError`."""


class Capacity(Protocol):
    """What the gate needs of the connection registry."""

    def full(self, credential_id: str) -> bool:
        """Whether the credential is at its connection cap."""


TenantOriginCheck = Callable[[TenantId, str], Awaitable[bool]]
"""``await allowed(tenant, origin)``: whether the tenant's own allowlist has ``origin``."""


class AmbiguousCredential(Exception):
    """More than one credential was presented (several headers or bearer entries)."""


def bearer_token(headers: Headers) -> str | None:
    """The credential from ``Authorization: Bearer`` or else a bearer subprotocol entry.

    Raises :class:`AmbiguousCredential` for several ``Authorization`` headers or several
    bearer entries: the server will not guess which one the client meant.
    """
    auths = headers.get_all("Authorization")
    if len(auths) > 1:
        raise AmbiguousCredential
    if auths:
        scheme, _, value = auths[0].partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    found: list[str] = []
    for header in headers.get_all("Sec-WebSocket-Protocol"):
        for item in header.split(","):
            item = item.strip()
            if item.startswith(AUTH_SUBPROTOCOL_PREFIX):
                found.append(item[len(AUTH_SUBPROTOCOL_PREFIX) :])
    if len(found) > 1:
        raise AmbiguousCredential
    return found[0] if found else None


def normalize_allowlist(origins: Iterable[str]) -> frozenset[str]:
    """The server-wide allowlist, normalised; :class:`AuthConfigError` on a bad entry."""
    try:
        return frozenset(normalize_origin(o) for o in origins)
    except InvalidOrigin as exc:
        raise AuthConfigError(f"HYPERTAB_ALLOWED_ORIGINS: {exc}") from None


class HandshakeGate:
    """Decides every ``/v1/ws`` upgrade. See the module docstring for the order of checks."""

    def __init__(
        self,
        auth: Authenticator,
        capacity: Capacity,
        *,
        allowed_origins: Iterable[str] = (),
        tenant_origin: TenantOriginCheck | None = None,
        on_failure: list[AuthFailureHook] | None = None,
    ) -> None:
        self.auth = auth
        self.capacity = capacity
        self.allowed_origins = normalize_allowlist(allowed_origins)
        self.tenant_origin = tenant_origin
        self.on_failure: list[AuthFailureHook] = on_failure if on_failure is not None else []

    async def check(
        self, headers: Headers, query: str, *, ip: str | None, now: float
    ) -> Principal | Refusal:
        """The verified principal, or the refusal to send."""
        if query:
            return self._refuse(_QUERY, ip, None)
        origins = headers.get_all("Origin")
        origin = origins[0] if len(origins) == 1 else None
        if origins and (origin is None or not is_origin(origin)):
            return self._refuse(
                Refusal(http.HTTPStatus.FORBIDDEN, _ORIGIN, GateReason.BAD_ORIGIN), ip, None
            )
        try:
            token = bearer_token(headers)
        except AmbiguousCredential:
            return self._refuse(
                Refusal(http.HTTPStatus.UNAUTHORIZED, UNAUTHORIZED_BODY, GateReason.AMBIGUOUS),
                ip,
                None,
            )
        try:
            principal = await self.auth.authenticate(token, now=now)
        except AuthError as exc:
            return self._refuse(
                Refusal(http.HTTPStatus.UNAUTHORIZED, UNAUTHORIZED_BODY, exc.reason),
                ip,
                exc.credential_id,
            )
        hosts = headers.get_all("Host")
        host = hosts[0] if len(hosts) == 1 else None
        if origin is not None and not await self._origin_ok(principal.tenant, origin, host):
            return self._refuse(
                Refusal(
                    http.HTTPStatus.FORBIDDEN,
                    origin_hint(principal.tenant, origin),
                    GateReason.ORIGIN_NOT_ALLOWED,
                ),
                ip,
                principal.credential_id,
            )
        if self.capacity.full(principal.credential_id):
            return self._refuse(_CAP, ip, principal.credential_id)
        return principal

    async def _origin_ok(self, tenant: TenantId, origin: str, host: str | None) -> bool:
        if same_origin(origin, host) or origin_allowed(origin, self.allowed_origins):
            return True
        return self.tenant_origin is not None and await self.tenant_origin(tenant, origin)

    def _refuse(self, refusal: Refusal, ip: str | None, credential_id: str | None) -> Refusal:
        reason = str(refusal.reason)
        log.info(
            "handshake refused",
            extra={"reason": reason, "status": int(refusal.status), "ip": ip},
        )
        for hook in list(self.on_failure):
            try:
                hook(reason, ip, credential_id)
            except Exception:
                # An audit hook failing must not turn a refusal into an acceptance or a 500.
                log.exception("auth failure hook failed")
        return refusal


class HandshakeLogFilter(logging.Filter):
    """Keeps credentials out of the WebSocket server's log records, at every level.

    The websockets debug log prints the request line and every header. This filter, on the
    logger the server logs to, cuts query strings (a token someone put in a URL) and blanks
    ``Authorization`` / ``Cookie`` values and ``hypertab.bearer.*`` subprotocol entries
    before any handler sees the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and arguments; never drops it."""
        if isinstance(record.msg, str):
            record.msg = _cut_query(_cut_bearer(record.msg))
        args = record.args
        if isinstance(args, tuple):
            name = args[0] if len(args) == 2 else None
            if isinstance(name, str) and name.lower() in _SECRET_HEADERS:
                args = (name, "[REDACTED]")
            record.args = tuple(
                _cut_query(_cut_bearer(a)) if isinstance(a, str) else a for a in args
            )
        return True


_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _cut_bearer(text: str) -> str:
    if AUTH_SUBPROTOCOL_PREFIX not in text:
        return text
    head, _, tail = text.partition(AUTH_SUBPROTOCOL_PREFIX)
    end = next((i for i, ch in enumerate(tail) if ch in ", \t"), len(tail))
    return f"{head}{AUTH_SUBPROTOCOL_PREFIX}[REDACTED]{_cut_bearer(tail[end:])}"


def _cut_query(text: str) -> str:
    head, sep, tail = text.partition("?")
    if not sep:
        return text
    end = next((i for i, ch in enumerate(tail) if ch.isspace()), len(tail))
    return f"{head}?[REDACTED]{_cut_query(tail[end:])}"


WS_LOGGER_NAME = "server.websockets"


def websocket_logger() -> logging.Logger:
    """The logger to pass to ``websockets.serve``: credentials filtered out of records."""
    logger = logging.getLogger(WS_LOGGER_NAME)
    if not any(isinstance(f, HandshakeLogFilter) for f in logger.filters):
        logger.addFilter(HandshakeLogFilter())
    return logger


__all__ = [
    "AUTH_SUBPROTOCOL_PREFIX",
    "UNAUTHORIZED_BODY",
    "AuthFailure",
    "AuthFailureHook",
    "GateReason",
    "HandshakeGate",
    "HandshakeLogFilter",
    "Refusal",
    "bearer_token",
    "websocket_logger",
]
