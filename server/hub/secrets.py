"""The secret store over the WebSocket: handlers for ``secret_set|list|reveal|delete``.

:func:`install` opens the process's :class:`~server.lifecycle.service.Lifecycle` (master
keys, data keys, provisioning) and registers the handlers in ``Services.handlers``. Each
handler works on the tenant's writer connection in a turn on the writer's queue
(``TenantStore.exclusive()``), so a secret write and its audit entry share one transaction
and never interleave with a group commit. Errors are wire codes; their messages name
secrets and rules, never values.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from protocol.messages import Ok
from protocol.secrets import (
    SecretDelete,
    SecretEntry,
    SecretList,
    SecretListing,
    SecretReveal,
    SecretSet,
    SecretStored,
    SecretValue,
)
from server.auth.principal import Scope, TenantId
from server.hub.httproutes import client_host
from server.lifecycle import secret_ops
from server.lifecycle.provision import ensure_feature_schema
from server.lifecycle.service import Lifecycle, SecretsUnavailable
from server.secrets.datakeys import DataKeyStore
from server.secrets.errors import (
    DataKeyError,
    DecryptionError,
    InvalidSecretError,
    KeyringError,
    MissingDataKeyError,
    SecretNotFoundError,
)
from server.secrets.store import SecretInfo
from server.store.asyncconn import AsyncConnection

if TYPE_CHECKING:
    from server.config import Config
    from server.hub.services import Services
    from server.hub.session import Session

log = logging.getLogger(__name__)


async def install(services: Services, config: Config) -> Lifecycle:
    """Open the lifecycle service for ``config.data_dir`` and register the handlers.

    Raises :class:`~server.secrets.errors.KeyringError` for an unsafe or malformed master
    key source: the server must refuse to start rather than run without its keys.
    """
    assert services.control is not None
    lifecycle = await Lifecycle.open(
        config.data_dir, services.control, durability=config.durability
    )
    if lifecycle.keyring() is None:
        log.warning(
            "no master keys configured: secrets are unavailable (hypertab keyring generate)"
        )
    services.lifecycle = lifecycle
    services.handlers[SecretSet] = handle_set
    services.handlers[SecretList] = handle_list
    services.handlers[SecretReveal] = handle_reveal
    services.handlers[SecretDelete] = handle_delete
    return lifecycle


def entry(info: SecretInfo) -> SecretEntry:
    """A listing entry as the wire carries it."""
    return SecretEntry(
        name=info.name,
        kind=info.kind.value,
        masked=info.masked,
        key_version=info.key_version,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )


def _actor(session: Session) -> str:
    return f"{session.principal.tenant}/{session.principal.subject}"


def _ip(session: Session) -> str | None:
    return client_host(session.conn)


@contextlib.asynccontextmanager
async def _tenant_db(
    session: Session, now: float
) -> AsyncIterator[tuple[AsyncConnection, DataKeyStore]]:
    lifecycle: Lifecycle | None = session.services.lifecycle
    if lifecycle is None:
        raise SecretsUnavailable("secrets are not enabled on this server")
    tenant = TenantId(session.tenant)
    keys = await lifecycle.keys_for(tenant, now=now)
    async with session.stores.use(tenant) as store, store.exclusive() as conn:
        if tenant not in lifecycle.schema_ready:
            await ensure_feature_schema(conn)  # tenants created before provisioning did it
            lifecycle.schema_ready.add(tenant)
        yield conn, keys


async def _guarded(session: Session, request: int, work: Callable[[], Awaitable[Any]]) -> None:
    try:
        await work()
    except InvalidSecretError as exc:
        session.error("invalid_secret", str(exc), request)
    except SecretNotFoundError as exc:
        session.error("secret_not_found", str(exc), request)
    except MissingDataKeyError:
        log.error("secret names a missing data key version", extra={"tenant": session.tenant})
        session.error(
            "secret_key_missing", "the secret's data key does not exist; set it again", request
        )
    except DecryptionError:
        log.error("secret ciphertext failed authentication", extra={"tenant": session.tenant})
        session.error(
            "secret_unreadable", "the stored secret did not authenticate; no value", request
        )
    except SecretsUnavailable as exc:
        session.error("secrets_unavailable", str(exc), request)
    except (DataKeyError, KeyringError) as exc:
        log.error("data key unavailable (%s)", type(exc).__name__, extra={"tenant": session.tenant})
        session.error("secrets_unavailable", "the tenant's data key is not available", request)


async def handle_set(session: Session, message: SecretSet) -> None:
    """``secret_set``: create or replace, audited as ``secret.written``."""

    async def work() -> None:
        now = time.time()
        async with _tenant_db(session, now) as (conn, keys):
            info = await secret_ops.set_secret(
                conn, TenantId(session.tenant), keys, message.name, message.kind, message.value,
                now=now, actor=_actor(session), ip=_ip(session),
            )  # fmt: skip
        session.send(SecretStored(id=message.id, secret=entry(info)))

    await _guarded(session, message.id, work)


async def handle_list(session: Session, message: SecretList) -> None:
    """``secret_list``: names, kinds and masked values (secrets:read or secrets:write)."""
    principal = session.principal
    if not (principal.can(Scope.SECRETS_READ) or principal.can(Scope.SECRETS_WRITE)):
        session.error("forbidden", "this credential lacks the secrets:read scope", message.id)
        return

    async def work() -> None:
        async with _tenant_db(session, time.time()) as (conn, keys):
            infos = await secret_ops.list_secrets(conn, TenantId(session.tenant), keys)
        session.send(SecretListing(id=message.id, secrets=[entry(i) for i in infos]))

    await _guarded(session, message.id, work)


async def handle_reveal(session: Session, message: SecretReveal) -> None:
    """``secret_reveal``: the value, after its ``secret.read`` audit entry committed."""

    async def work() -> None:
        now = time.time()
        async with _tenant_db(session, now) as (conn, keys):
            kind, value = await secret_ops.reveal_secret(
                conn, TenantId(session.tenant), keys, message.name,
                now=now, actor=_actor(session), ip=_ip(session),
            )  # fmt: skip
        session.send(SecretValue(id=message.id, name=message.name, kind=kind.value, value=value))

    await _guarded(session, message.id, work)


async def handle_delete(session: Session, message: SecretDelete) -> None:
    """``secret_delete``: remove (ciphertext zeroed), audited as ``secret.written``."""

    async def work() -> None:
        now = time.time()
        async with _tenant_db(session, now) as (conn, keys):
            await secret_ops.delete_secret(
                conn, TenantId(session.tenant), keys, message.name,
                now=now, actor=_actor(session), ip=_ip(session),
            )  # fmt: skip
        session.send(Ok(id=message.id))

    await _guarded(session, message.id, work)
