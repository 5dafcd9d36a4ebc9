"""Containment: every credential of the tenant (or of every tenant) stops working now.

Order, most urgent first:

1. Per tenant, one control transaction (:meth:`ControlPlane.revoke_tenant_keys`): every
   live key revoked, the tenant's JWTs issued until now refused (``jwt_cutoff``), one new
   admin key issued, a ``TENANT`` revocation logged. The commit
   reaches running hubs through the same path as ``hypertab key revoke``: their
   ``control.db`` watcher, woken at once through the notify sockets; they close the
   tenant's sockets (4003), JWT ones included.
2. With ``--all``: the master key is rotated (a new key in the key file, every data key
   re-wrapped) when it comes from a key file.
3. Per tenant: the data key is rotated and every secret re-encrypted under the new version
   (``server.lifecycle.rotation``); old versions are shredded.
4. One ``incident.contained`` entry with the case id in the control audit log (it raises
   a critical alert), listing what was done and what could not be.

A step that fails does not stop the others (containment must go as far as it can); its
error is in the result and in the audit entry.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.audit.events import record_control_event
from server.auth.apikeys import IssuedKey
from server.auth.principal import TenantId
from server.control.tenants import TenantRecord
from server.lifecycle.provision import ensure_feature_schema, open_tenant_db
from server.lifecycle.rotation import rotate_master_key, rotate_tenant_key
from server.lifecycle.service import Lifecycle, SecretsUnavailable
from server.secrets.errors import SecretsError
from server.store.schema import tenant_path


def new_case_id(now: float) -> str:
    """``inc_<utc date>_<8 hex>``: sortable, unguessable enough to not collide."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d")
    return f"inc_{day}_{secrets.token_hex(4)}"


@dataclass(slots=True)
class TenantContainment:
    """What was done for one tenant."""

    tenant: TenantRecord
    revoked: list[str] = field(default_factory=list)
    new_key: IssuedKey | None = None
    data_key_version: int | None = None
    secrets_reencrypted: int = 0
    errors: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """For the audit entry: ids and counts, never a secret."""
        return {
            "tenant": self.tenant.id,
            "keys_revoked": self.revoked,
            "new_admin_key": self.new_key.record.id if self.new_key is not None else None,
            "data_key_version": self.data_key_version,
            "secrets_reencrypted": self.secrets_reencrypted,
            "errors": self.errors,
        }


@dataclass(slots=True)
class Containment:
    """The outcome of ``incident contain``."""

    case: str
    scope: str
    at: float
    tenants: list[TenantContainment]
    master_key: str | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """The ``incident.contained`` entry's details."""
        return {
            "case": self.case,
            "scope": self.scope,
            "tenants": [t.details() for t in self.tenants],
            "master_key": self.master_key,
            "errors": self.errors,
        }


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


async def _rotate_data_key(lifecycle: Lifecycle, item: TenantContainment, now: float) -> None:
    tenant = TenantId(item.tenant.id)
    try:
        datakeys = await lifecycle.keys_for(tenant, now=now)
    except SecretsUnavailable:
        item.errors.append("no master keys configured: no data key to rotate")
        return
    path = tenant_path(lifecycle.data_dir, tenant)
    if not path.is_file():
        item.errors.append("no tenant database")
        return
    conn = await open_tenant_db(path)
    try:
        await ensure_feature_schema(conn)
        rotation = await rotate_tenant_key(datakeys, conn, tenant, now=now)
    finally:
        await conn.close()
    item.data_key_version = rotation.version
    item.secrets_reencrypted = rotation.reencrypted


async def contain(
    lifecycle: Lifecycle,
    tenants: list[TenantRecord],
    *,
    everything: bool,
    now: float,
    actor: str,
    case: str | None = None,
    jwt_configured: bool = False,
) -> Containment:
    """Contain ``tenants`` (every live tenant with ``everything``); see the module doc."""
    plane = lifecycle.control
    result = Containment(
        case=case or new_case_id(now),
        scope="all" if everything else "tenant",
        at=now,
        tenants=[TenantContainment(t) for t in tenants],
    )
    for item in result.tenants:
        try:
            revoked, issued = await plane.revoke_tenant_keys(
                TenantId(item.tenant.id),
                now=now,
                actor=actor,
                reason="incident",
                reissue_by=f"incident:{result.case}",
            )
        except Exception as exc:
            item.errors.append(f"revoking keys: {_error(exc)}")
            continue
        item.revoked = [k.id for k in revoked]
        item.new_key = issued
    if everything:
        source = lifecycle.source
        if source.inline:
            result.notes.append(
                "master keys come from HYPERTAB_MASTER_KEYS: generate a new key, append it to "
                "the variable as the last entry, restart, then run `hypertab keyring rotate`"
            )
        elif source.path is not None and source.path.exists():
            try:
                rotation = await rotate_master_key(
                    source.path, lifecycle.conn, actor=actor, now=now
                )
                result.master_key = rotation.key_id
            except (SecretsError, OSError) as exc:
                result.errors.append(f"rotating the master key: {_error(exc)}")
        else:
            result.notes.append("no master key file: nothing to rotate")
        if jwt_configured:
            result.notes.append(
                "the JWT signing key (HYPERTAB_JWT_SECRET / HYPERTAB_JWT_JWKS) is the token "
                "issuer's, not managed by Hypertab: rotate it there if it may have leaked"
            )
    for item in result.tenants:
        if item.new_key is None:
            continue
        try:
            await _rotate_data_key(lifecycle, item, now)
        except Exception as exc:
            item.errors.append(f"rotating the data key: {_error(exc)}")
    entry = AuditEntry(
        now,
        actor,
        Action.INCIDENT_CONTAINED,
        target=result.case,
        details=result.details(),
    )
    await record_control_event(plane, entry)
    return result


def next_steps(result: Containment, *, jwt_configured: bool) -> list[str]:
    """What the operator and the tenants' users must do now, in plain words."""
    steps = [
        "Hand each tenant's new admin key to its owner over a trusted channel (it is shown "
        "once, above); the owner creates the other keys again from it (`hypertab key create` "
        "or client.keys.create).",
        "Every program, agent and browser still configured with an old key is refused (401): "
        "reconfigure each with a new key.",
        "Secrets were re-encrypted under a new data key, but their values did not change: if "
        "the attacker could read them, rotate each value at its provider and store it again "
        "(`hypertab secret set`).",
    ]
    if jwt_configured:
        steps.append(
            "JWTs issued before this containment are refused for the contained tenants, but "
            "anyone holding the JWT signing key (HYPERTAB_JWT_SECRET, or a private key of the "
            "issuer's HYPERTAB_JWT_JWKS) can still mint new ones: if it may have leaked, rotate "
            "it at the token issuer and restart every server with the new one."
        )
    if result.master_key is not None:
        steps.append(
            f"The master key {result.master_key} is now current: once every server has reloaded "
            "the key file, remove the old master keys (`hypertab keyring list`, then "
            "`hypertab keyring remove KEY_ID`)."
        )
    since = dt.datetime.fromtimestamp(result.at - 7 * 86_400, dt.UTC).isoformat(timespec="seconds")
    steps.append(
        f"List what was touched for the 72-hour notification: `hypertab incident report "
        f"--since {since}` (widen the window to the first suspicious access); publish the "
        "root-cause report in the format of INCIDENTS.md."
    )
    return steps
