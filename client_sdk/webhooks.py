"""The tenant's webhooks through the SDK: ``client.webhooks`` (needs ``keys:admin``).

    hook, secret = await client.webhooks.add("https://hooks.example.com/ht", table="Orders")
    for info in await client.webhooks.list():     # pending, delivered and failed batches
        print(info.id, info.url, info.failed_batches)
    status = await client.webhooks.test(hook.id)  # one signed test request, now
    await client.webhooks.remove(hook.id)

``secret`` signs every delivery (``Hypertab-Signature``; docs/webhooks.md) and is shown
only here. Errors raise :class:`~client_sdk.errors.ServerError` with a wire code:
``forbidden``, ``webhook_refused`` (https only; no private or reserved address),
``unknown_webhook``, ``unknown_table``, ``secrets_unavailable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from client_sdk.client import Client

__all__ = ["WebhookInfo", "Webhooks"]


class Webhooks:
    """Add, list, remove and test the tenant's webhooks over the client's connection."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def add(self, url: str, *, table: str | None = None) -> tuple[WebhookInfo, str]:
        """POST every committed change of ``table`` (id or name; default every table) to
        ``url``. Returns the webhook and its signing secret (shown this once)."""
        result = await self._client.request_as(
            lambda rid: WebhookAdd(id=rid, url=url, table=table), WebhookAdded
        )
        return result.webhook, str(result.secret)

    async def list(self) -> list[WebhookInfo]:
        """The tenant's webhooks and how their deliveries stand."""
        result = await self._client.request_as(lambda rid: WebhookList(id=rid), WebhookListing)
        hooks: list[WebhookInfo] = result.webhooks
        return hooks

    async def remove(self, webhook: str) -> None:
        """Remove a webhook and its undelivered changes."""
        await self._client.request(lambda rid: WebhookRemove(id=rid, webhook=webhook))

    async def test(self, webhook: str) -> WebhookTested:
        """Send one signed ``type: test`` request now; the receiver's status or the error."""
        result: WebhookTested = await self._client.request_as(
            lambda rid: WebhookTest(id=rid, webhook=webhook), WebhookTested
        )
        return result
