"""The open tenant stores, bounded: least recently used idle stores are closed.

Each open store holds two SQLite connections, each with its own thread, so 10,000 tenants
must not mean 10,000 open stores. A store is in use while a request holds its lease
(:meth:`StoreManager.use`); only idle stores are evicted, when more than ``max_open`` are
open or when one has been idle longer than ``idle_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

from server.engine.batch import FormulaCheck
from server.store.schema import Durability, tenant_path
from server.store.tenant import OnCommit, StoreClosed, TenantStore
from server.store.writer import FormulaRecompute


class StoreManager:
    """Opens tenant stores on demand and closes idle ones."""

    def __init__(
        self,
        data_dir: Path,
        *,
        on_commit: OnCommit,
        durability: Durability = Durability.PROCESS,
        max_open: int = 256,
        idle_seconds: float = 300.0,
        check_formula: FormulaCheck | None = None,
        recompute: FormulaRecompute | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.durability = durability
        self.max_open = max_open
        self.idle_seconds = idle_seconds
        self._on_commit = on_commit
        self._check_formula = check_formula
        self._recompute = recompute
        self._stores: OrderedDict[str, TenantStore] = OrderedDict()
        self._opening: dict[str, asyncio.Future[TenantStore]] = {}
        self._closed = False

    @property
    def open_count(self) -> int:
        """How many tenant stores are open."""
        return len(self._stores)

    async def _get(self, tenant: str) -> TenantStore:
        if self._closed:
            raise StoreClosed("server is shutting down")
        store = self._stores.get(tenant)
        if store is not None:
            self._stores.move_to_end(tenant)
            return store
        pending = self._opening.get(tenant)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[TenantStore] = asyncio.get_running_loop().create_future()
        self._opening[tenant] = future
        try:
            store = await TenantStore.open(
                tenant,
                tenant_path(self.data_dir, tenant),
                durability=self.durability,
                on_commit=self._on_commit,
                check_formula=self._check_formula,
                recompute=self._recompute,
            )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self._opening[tenant]
        future.set_result(store)
        self._stores[tenant] = store
        await self._evict(keep=tenant)  # never the store about to be handed out
        return store

    async def lease(self, tenant: str) -> TenantStore:
        """Take a lease on a tenant's store; hand it back with :meth:`release`."""
        store = await self._get(tenant)
        store.users += 1
        return store

    def release(self, store: TenantStore) -> None:
        """Hand back a lease taken with :meth:`lease`."""
        store.users -= 1
        store.last_used = time.monotonic()

    @contextlib.asynccontextmanager
    async def use(self, tenant: str) -> AsyncIterator[TenantStore]:
        """Lease a tenant's store for the duration of a request."""
        store = await self.lease(tenant)
        try:
            yield store
        finally:
            self.release(store)

    async def _evict(self, keep: str) -> None:
        excess = len(self._stores) - self.max_open
        if excess <= 0:
            return
        for tenant, store in list(self._stores.items()):
            if excess <= 0:
                break
            if store.idle and tenant != keep:
                del self._stores[tenant]
                await store.close()
                excess -= 1

    async def close_idle(self) -> int:
        """Close stores idle for longer than ``idle_seconds``; returns how many."""
        cutoff = time.monotonic() - self.idle_seconds
        closed = 0
        for tenant, store in list(self._stores.items()):
            if store.idle and store.last_used < cutoff:
                del self._stores[tenant]
                await store.close()
                closed += 1
        return closed

    async def close_tenant(self, tenant: str) -> None:
        """Close one tenant's store (before deleting its files)."""
        store = self._stores.pop(tenant, None)
        if store is not None:
            await store.close()

    async def close(self) -> None:
        """Commit queued batches and close every store. Idempotent."""
        self._closed = True
        stores = list(self._stores.values())
        self._stores.clear()
        await asyncio.gather(*(store.close() for store in stores))
