"""Tenant webhooks over the WebSocket: ``webhook_add|list|remove|test`` (``keys:admin``).

The same operations as ``hypertab webhook …`` (``server/webhooks/registry.py``), on the
caller's own tenant: the destination is checked first (no lock held), then the webhook,
its encrypted signing secret and the audit entry are written on the tenant's writer with
the writer paused, so they never interleave with a group commit; ``control.db``'s index is
updated and the hub's dispatcher told at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from protocol.messages import Ok
from protocol.webhooks import (
    WebhookAdd,
    WebhookAdded,
    WebhookInfo,
    WebhookList,
    WebhookListing,
    WebhookRemove,
    WebhookTest,
    WebhookTested,
)
from server.auth.principal import TenantId
from server.delivery.destination import DestinationPolicy
from server.delivery.errors import DestinationRefused
from server.delivery.retry import RetryPolicy
from server.delivery.sender import Sender
from server.lifecycle.provision import ensure_feature_schema
from server.lifecycle.service import SecretsUnavailable
from server.secrets.errors import DataKeyError, KeyringError
from server.webhooks.registry import (
    Webhook,
    WebhookError,
    add_webhook,
    check_destination,
    enable_webhook,
    index_in_transaction,
    list_webhooks,
    remove_webhook,
    resolve_table,
    send_test,
    signing_secret,
)

if TYPE_CHECKING:
    from server.hub.services import Services
    from server.hub.session import Session
    from server.webhooks.dispatcher import WebhookDispatcher

Dispatcher = Callable[[], "WebhookDispatcher | None"]


def info(hook: Webhook) -> WebhookInfo:
    """A webhook as the wire carries it."""
    return WebhookInfo(
        id=hook.id,
        url=hook.url,
        created_at=hook.created_at,
        table=hook.table,
        pending=hook.pending,
        delivered_batches=hook.delivered,
        failed_batches=hook.failed,
        last_error=hook.last_error,
        last_failed=hook.last_failed,
        disabled_at=hook.disabled_at,
    )


class WebhookHandlers:
    """The four handlers, with the destination rules and the dispatcher to tell."""

    def __init__(self, dispatcher: Dispatcher, policy: DestinationPolicy, retry: RetryPolicy):
        self.dispatcher = dispatcher
        self.policy = policy
        self.retry = retry

    def register(self, services: Services) -> None:
        """Install the handlers in ``services``."""
        services.handlers[WebhookAdd] = self.add
        services.handlers[WebhookList] = self.list
        services.handlers[WebhookRemove] = self.remove
        services.handlers[WebhookTest] = self.test

    async def _guarded(
        self, session: Session, request: int, work: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            await work()
        except DestinationRefused as exc:
            session.error("webhook_refused", str(exc), request)
        except WebhookError as exc:
            code = "unknown_table" if "table" in str(exc) else "unknown_webhook"
            if "at most" in str(exc):
                code = "invalid_op"
            session.error(code, str(exc), request)
        except SecretsUnavailable as exc:
            session.error("secrets_unavailable", str(exc), request)
        except (DataKeyError, KeyringError):
            session.error("secrets_unavailable", "the tenant's data key is not available", request)

    async def _index(self, session: Session, has: bool) -> None:
        """After the tenant's writer is released: never hold both locks at once."""
        tenant = session.tenant
        control = session.services.control
        assert control is not None
        async with control.transaction() as cconn:
            await index_in_transaction(cconn, tenant, has_webhooks=has)
        dispatcher = self.dispatcher()
        if dispatcher is not None:
            dispatcher.watch(tenant, present=has)

    async def add(self, session: Session, message: WebhookAdd) -> None:
        """``webhook_add``."""

        async def work() -> None:
            lifecycle = session.services.lifecycle
            if lifecycle is None:
                raise SecretsUnavailable("secrets are not enabled on this server")
            await check_destination(self.policy, message.url)  # DNS: before any lock
            now = time.time()
            tenant = TenantId(session.tenant)
            keys = await lifecycle.keys_for(tenant, now=now)
            async with session.stores.use(tenant) as store, store.exclusive() as conn:
                await ensure_feature_schema(conn)
                table = await resolve_table(conn, message.table) if message.table else None
                hook, secret = await add_webhook(
                    conn, tenant, keys, message.url, table, now=now,
                    actor=_actor(session), ip=_ip(session),
                )  # fmt: skip
                has = bool(await list_webhooks(conn))
            await self._index(session, has)
            session.send(WebhookAdded(id=message.id, webhook=info(hook), secret=secret))

        await self._guarded(session, message.id, work)

    async def list(self, session: Session, message: WebhookList) -> None:
        """``webhook_list``."""

        async def work() -> None:
            async with session.stores.use(session.tenant) as store, store.exclusive() as conn:
                hooks = await list_webhooks(conn)
            session.send(WebhookListing(id=message.id, webhooks=[info(h) for h in hooks]))

        await self._guarded(session, message.id, work)

    async def remove(self, session: Session, message: WebhookRemove) -> None:
        """``webhook_remove``."""

        async def work() -> None:
            lifecycle = session.services.lifecycle
            if lifecycle is None:
                raise SecretsUnavailable("secrets are not enabled on this server")
            now = time.time()
            tenant = TenantId(session.tenant)
            keys = await lifecycle.keys_for(tenant, now=now)
            async with session.stores.use(tenant) as store, store.exclusive() as conn:
                await remove_webhook(
                    conn, tenant, keys, message.webhook, now=now,
                    actor=_actor(session), ip=_ip(session),
                )  # fmt: skip
                has = bool(await list_webhooks(conn))
            await self._index(session, has)
            session.send(Ok(id=message.id))

        await self._guarded(session, message.id, work)

    async def test(self, session: Session, message: WebhookTest) -> None:
        """``webhook_test``: the request is sent with no lock held."""

        async def work() -> None:
            lifecycle = session.services.lifecycle
            if lifecycle is None:
                raise SecretsUnavailable("secrets are not enabled on this server")
            tenant = TenantId(session.tenant)
            keys = await lifecycle.keys_for(tenant, now=time.time())
            async with session.stores.use(tenant) as store, store.exclusive() as conn:
                hook = {h.id: h for h in await list_webhooks(conn)}.get(message.webhook)
                if hook is None:
                    raise WebhookError(f"no webhook {message.webhook!r}")
                secret = await signing_secret(conn, tenant, keys, hook.id)
            sender = Sender(self.policy, timeout=self.retry.timeout)
            try:
                event, status, error = await send_test(sender, hook, tenant, secret, time.time())
            finally:
                await sender.aclose()
            if error is None and hook.disabled_at is not None:  # the receiver is back
                async with session.stores.use(tenant) as store, store.exclusive() as conn:
                    await enable_webhook(
                        conn, hook.id, now=time.time(), actor=_actor(session), ip=_ip(session)
                    )
            session.send(WebhookTested(id=message.id, event=event, status=status, error=error))

        await self._guarded(session, message.id, work)


def _actor(session: Session) -> str:
    return f"{session.principal.tenant}/{session.principal.subject}"


def _ip(session: Session) -> str | None:
    address = getattr(session.conn, "remote_address", None)
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None
