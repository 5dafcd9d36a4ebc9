"""Identity on a live connection: expiry, in-band re-authentication, key administration.

How it works
------------
:class:`Identity` is the hub's identity feature (``Services.identity``). ``track`` arms an
:class:`~server.hub.expiry.ExpiryTimer` for every session whose credential expires.

``auth {id, token}``: the token is verified exactly as at the handshake. It must name the
same tenant, subject and credential kind, and grant at least what the connection already
has (a narrower token could not take back what subscriptions already receive: the client
must reconnect with it). Then the session's principal is replaced and the timer re-armed
with the new expiry. Any refusal is ``auth_failed``; if the current credential has already
expired by then, the connection is closed with 4001.

``key_create`` / ``key_list`` / ``key_revoke`` / ``key_rotate`` / ``key_update`` need
``keys:admin`` (checked
by the authorizer) and act on the caller's tenant only: a key id of another tenant is
``unknown_key``, exactly like an id that does not exist. A key can never be created or
rotated into more than its creator holds (scopes and table allowlist), so ``keys:admin``
does not escalate. Revocation goes through the control plane, which publishes it: every
socket of the key closes at once on every node. When a connection revokes or rotates its
own key, its answer is written before it is closed (4003). ``key_update`` only narrows
(a scope the key lacks is ``forbidden``); this process's sockets of the key are narrowed
before the answer, other processes' through the bus (``server/hub/grants.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.errors import CloseCode
from protocol.identity import (
    Auth,
    Authenticated,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyRevoke,
    KeyRevoked,
    KeyRotate,
    Keys,
    KeyUpdate,
    KeyUpdated,
)
from server.auth.apikeys import KeyRecord
from server.auth.errors import AuthError
from server.auth.handshake import AuthFailureHook
from server.auth.principal import CredentialKind, KeyId, Principal, Scope
from server.control.errors import (
    InvalidInput,
    KeyNotRotatable,
    UnknownKey,
    UnknownTenant,
    WouldWiden,
)
from server.control.plane import ControlPlane
from server.hub.expiry import ExpiryQueue, ExpiryTimer
from server.hub.grants import narrow_all
from server.hub.httproutes import client_host
from server.hub.registry import Registry

if TYPE_CHECKING:
    from server.hub.services import Services
    from server.hub.session import Session

log = logging.getLogger(__name__)


def key_status(record: KeyRecord, now: float) -> str:
    """``live``, ``revoked`` or ``expired``."""
    if record.revoked_at is not None:
        return "revoked"
    return "live" if record.is_live(now) else "expired"


def key_info(record: KeyRecord, now: float) -> KeyInfo:
    """A key's metadata as the wire carries it (never its hash or secret)."""
    return KeyInfo(
        id=record.id,
        name=record.name,
        status=key_status(record, now),
        scopes=sorted(s.value for s in record.scopes),
        created_by=record.created_by,
        created_at=record.created_at,
        tables=sorted(record.tables) if record.tables is not None else None,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
        last_used_at=record.last_used_at,
        replaced_by=record.replaced_by,
        rate=record.rate,
    )


def covers(holder: Principal, scopes: frozenset[Scope], tables: frozenset[str] | None) -> bool:
    """Whether ``holder`` holds every grant of a key with ``scopes`` and ``tables``. Pure."""
    if not scopes <= holder.scopes:
        return False
    if holder.tables is None:
        return True
    return tables is not None and tables <= holder.tables


def same_identity(old: Principal, new: Principal) -> bool:
    """Whether ``new`` may replace ``old`` on a live connection (re-auth). Pure.

    API keys cannot be refreshed in band (their subject is the key itself): only JWTs.
    """
    return (
        new.kind is CredentialKind.JWT
        and new.tenant == old.tenant
        and new.subject == old.subject
        and new.kind == old.kind
        and new.credential_id == old.credential_id
        and covers(new, old.scopes, old.tables)
    )


def _ip(session: Session) -> str | None:
    return client_host(session.conn)


class Identity:
    """Expiry timers, re-authentication and key administration for the hub's sessions."""

    def __init__(
        self,
        control: ControlPlane,
        registry: Registry,
        *,
        jwt_grace: float,
        on_auth_failure: list[AuthFailureHook] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.control = control
        self.registry = registry
        self.jwt_grace = jwt_grace
        self.on_auth_failure: list[AuthFailureHook] = (
            on_auth_failure if on_auth_failure is not None else []
        )
        self.clock = clock
        self._expiries = ExpiryQueue()
        self._timers: dict[Session, ExpiryTimer | None] = {}
        """Every tracked session; ``None`` until its credential has an expiry (most API keys
        never do: no timer object is made for them)."""

    def register(self, services: Services) -> None:
        """Install this feature and its message handlers on ``services``."""
        services.identity = self
        services.handlers[Auth] = self.reauth
        services.handlers[KeyCreate] = self.key_create
        services.handlers[KeyList] = self.key_list
        services.handlers[KeyRevoke] = self.key_revoke
        services.handlers[KeyRotate] = self.key_rotate
        services.handlers[KeyUpdate] = self.key_update

    # --- expiry ---------------------------------------------------------------------------

    def track(self, session: Session) -> None:
        """Arm the session's expiry timer (when its credential expires)."""
        principal = session.principal
        self._timers[session] = None
        if principal.expires_at is not None:
            self._arm(session, principal, now=self.clock())

    def _arm(self, session: Session, principal: Principal, *, now: float) -> None:
        timer = self._timers.get(session)
        if timer is None:
            timer = self._timers[session] = ExpiryTimer(session.close_now, self._expiries)
        timer.arm(principal.expires_at, now=now, grace=self._grace(principal))

    def _grace(self, principal: Principal) -> float:
        # A JWT is accepted at the handshake until exp + leeway: the connection lives as
        # long. An API key's expires_at is exact.
        return self.jwt_grace if principal.kind is CredentialKind.JWT else 0.0

    def untrack(self, session: Session) -> None:
        """Forget the session (idempotent)."""
        timer = self._timers.pop(session, None)
        if timer is not None:
            timer.cancel()

    # --- re-authentication ----------------------------------------------------------------

    async def reauth(self, session: Session, message: Auth) -> None:
        """``auth``: switch the connection to a fresh token of the same identity."""
        now = self.clock()
        old = session.principal
        try:
            new = await self.control.authenticate(message.token, now=now)
        except AuthError as exc:
            self._reauth_failed(session, message.id, exc.reason.value, exc.credential_id)
            return
        if not same_identity(old, new):
            self._reauth_failed(session, message.id, "identity_mismatch", new.credential_id)
            return
        session.principal = new
        if session in self._timers:  # still open: (re)arm at the new credential's expiry
            self._arm(session, new, now=now)
        session.send(
            Authenticated(
                id=message.id,
                subject=new.subject,
                scopes=sorted(s.value for s in new.scopes),
                expires_at=new.expires_at,
                tables=sorted(new.tables) if new.tables is not None else None,
            )
        )

    def _reauth_failed(
        self, session: Session, request: int, reason: str, credential_id: str | None
    ) -> None:
        log.info("in-band auth refused", extra={"reason": reason, "ip": _ip(session)})
        for hook in list(self.on_auth_failure):
            try:
                hook(reason, _ip(session), credential_id)
            except Exception:
                log.exception("auth failure hook failed")
        session.error(
            "auth_failed",
            "the token was refused (invalid, expired, another identity or fewer grants); "
            "the current credential still applies until it expires",
            request,
        )
        session.auth_refused(now=self.clock())  # 4001 if the credential already expired

    # --- key administration ---------------------------------------------------------------

    async def key_create(self, session: Session, message: KeyCreate) -> None:
        """``key_create``: a key of the caller's tenant, at most the caller's grants."""
        holder = session.principal
        try:
            scopes = frozenset(Scope(s) for s in message.scopes)
        except ValueError:
            session.error("bad_message", "unknown scope", message.id)
            return
        tables = frozenset(message.tables) if message.tables is not None else None
        if not covers(holder, scopes, tables):
            session.error(
                "forbidden", "a key cannot grant scopes or tables its creator lacks", message.id
            )
            return
        if holder.rate is not None and (message.rate is None or message.rate > holder.rate):
            session.error(
                "forbidden", "a key cannot be faster than its creator's own rate", message.id
            )
            return
        now = self.clock()
        try:
            issued = await self.control.create_key(
                holder.tenant,
                message.name,
                scopes,
                tables=tables,
                expires_at=message.expires_at,
                created_by=holder.subject[:200],
                now=now,
                rate=message.rate,
            )
        except InvalidInput as exc:
            session.error("bad_message", str(exc), message.id)
            return
        except UnknownTenant:
            session.error("forbidden", "the tenant is deleted", message.id)
            return
        session.send(
            KeyCreated(id=message.id, key=key_info(issued.record, now), secret=issued.secret)
        )

    async def key_list(self, session: Session, message: KeyList) -> None:
        """``key_list``: the caller's tenant's keys."""
        now = self.clock()
        records = await self.control.list_keys(session.principal.tenant)
        session.send(Keys(id=message.id, keys=[key_info(r, now) for r in records]))

    async def key_revoke(self, session: Session, message: KeyRevoke) -> None:
        """``key_revoke``: revoke a key of the caller's tenant (idempotent)."""
        record = await self.control.get_key(KeyId(message.key))
        if record is None or record.tenant != session.principal.tenant:
            session.error("unknown_key", "no such key", message.id)
            return
        own = record.id == session.credential_id
        if own:  # answer first, then close: the bus would close us before the answer
            self.registry.remove(session)
        try:
            revoked = await self.control.revoke_key(record.id, now=self.clock())
        except BaseException:
            if own:
                self.registry.add(session)
            raise
        session.send(KeyRevoked(id=message.id, key=key_info(revoked, self.clock())))
        if own:
            session.close_now(CloseCode.CREDENTIAL_REVOKED, "credential revoked")

    async def key_rotate(self, session: Session, message: KeyRotate) -> None:
        """``key_rotate``: a new key with the same grants; the old one is revoked at once."""
        record = await self.control.get_key(KeyId(message.key))
        if record is None or record.tenant != session.principal.tenant:
            session.error("unknown_key", "no such key", message.id)
            return
        if not covers(session.principal, record.scopes, record.tables):
            session.error(
                "forbidden", "cannot rotate a key with grants this credential lacks", message.id
            )
            return
        own = record.id == session.credential_id
        if own:
            self.registry.remove(session)
        now = self.clock()
        try:
            issued = await self.control.rotate_key(
                record.id, now=now, created_by=session.principal.subject[:200]
            )
        except (KeyNotRotatable, UnknownKey, UnknownTenant):
            if own:
                self.registry.add(session)
            session.error("key_not_rotatable", "the key is revoked or expired", message.id)
            return
        except BaseException:
            if own:
                self.registry.add(session)
            raise
        session.send(
            KeyCreated(
                id=message.id,
                key=key_info(issued.record, now),
                secret=issued.secret,
                replaces=record.id,
            )
        )
        if own:
            session.close_now(CloseCode.CREDENTIAL_REVOKED, "credential rotated")

    async def key_update(self, session: Session, message: KeyUpdate) -> None:
        """``key_update``: narrow a key of the caller's tenant; its sockets narrow at once."""
        record = await self.control.get_key(KeyId(message.key))
        if record is None or record.tenant != session.principal.tenant:
            session.error("unknown_key", "no such key", message.id)
            return
        try:
            scopes = frozenset(Scope(s) for s in message.scopes)
        except ValueError:
            session.error("bad_message", "unknown scope", message.id)
            return
        now = self.clock()
        try:
            updated = await self.control.update_key_scopes(
                record.id, scopes, now=now, actor=session.principal.subject[:200]
            )
        except WouldWiden:
            session.error("forbidden", "a key can only be narrowed; create a new key", message.id)
            return
        except (KeyNotRotatable, UnknownKey):
            session.error("key_not_rotatable", "the key is revoked or expired", message.id)
            return
        except InvalidInput as exc:
            session.error("bad_message", str(exc), message.id)
            return
        # This process's sockets of the key: here, before the answer (others via the bus).
        narrow_all(self.registry.of_credential(updated.id), updated.scopes, updated.tables)
        session.send(KeyUpdated(id=message.id, key=key_info(updated, now)))
