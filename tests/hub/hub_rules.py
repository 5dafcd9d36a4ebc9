"""Helpers for the session-rule tests: principals, cores and frames, no socket, no loop."""

from __future__ import annotations

from typing import Any

from protocol.codec import MSGPACK, codec_for
from server.auth.principal import ALL_SCOPES, CredentialKind, Plan, Principal, Scope, TenantId
from server.hub.session_core import Action, SessionCore


def principal(
    scopes: frozenset[Scope] = ALL_SCOPES,
    *,
    tables: frozenset[str] | None = None,
    expires_at: float | None = None,
    kind: CredentialKind = CredentialKind.API_KEY,
) -> Principal:
    """A verified identity of tenant ``acme`` (as the handshake would produce it)."""
    return Principal(
        tenant=TenantId("acme"),
        subject="ada",
        kind=kind,
        credential_id="k_test",
        scopes=scopes,
        plan=Plan.PRO,
        tables=tables,
        expires_at=expires_at,
    )


def core(who: Principal | None = None, encoding: str = MSGPACK) -> SessionCore:
    """A fresh connection's rules."""
    return SessionCore("s1", who if who is not None else principal(), codec_for(encoding))


def frame(session: SessionCore, message: Any) -> bytes | str:
    """``message`` as the socket hands it over: bytes (msgpack) or str (JSON text)."""
    data = session.codec.encode(message)
    return data if session.codec.binary else data.decode()


def actions(session: SessionCore) -> list[Action]:
    """What the core asked for since the last call."""
    return session.actions_to_perform()
