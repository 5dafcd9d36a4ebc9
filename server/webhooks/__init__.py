"""Tenant webhooks: every committed change of a table, POSTed in version order, batched.

How it works
------------
A webhook is a row of the tenant's ``_ht_webhooks`` (a table id, or every table) with its
signing secret encrypted in the tenant's secret store (AES-256-GCM under the tenant's data
key: ``server.secrets``). The group commit (``server.store.writer``) adds one
``_ht_webhook_outbox`` row per committed change per matching webhook, inside the change's
own transaction: a batch that rolls back is never announced, a committed one is never lost.

The hub's :class:`~.dispatcher.WebhookDispatcher` is woken by the commit, takes the oldest
rows of one webhook and one table (up to :data:`~.payload.MAX_BATCH` changes), and POSTs
them as one signed batch carrying the version range: versions of a table are gap-free, so a
receiver that sees ``from_version`` jump knows exactly what to fetch with ``since``/query.
Only after a 2xx are the rows deleted; a failure keeps the same range for the next attempt
(same ``Hypertab-Id``), by the retry schedule of :mod:`server.delivery.retry`. Past its
bound the webhook is disabled and its pending changes dropped (``hypertab webhook list``
reports it), so a dead receiver cannot grow the database; a passing ``webhook test``
enables it again, and the receiver sees the gap.

:mod:`.registry` adds, lists and removes webhooks (``hypertab webhook …``) and keeps
``control.db``'s ``_ht_webhook_tenants`` index so a restarted hub knows where to look.
"""
