"""Custom formula functions at the hub: the ``function_define/drop/list`` handlers.

Definitions are validated and stored in the writer thread (``run_exclusive``) by
:class:`~server.store.formulas.FormulaRuntime`, which also keeps the tenant's registry that
the recompute hook evaluates with. After a define or drop, every formula column that
reaches the function (directly or through other functions) is recomputed by submitting a
server-made batch ``set_formula(column, <its current text>)`` to its table: the ordinary
write path, so the new values get a version, the op log and the broadcast like any change.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from typing import TYPE_CHECKING

from protocol.formulas import (
    FunctionDefine,
    FunctionDefined,
    FunctionDrop,
    FunctionInfo,
    FunctionList,
    FunctionListing,
)
from protocol.messages import Ok
from protocol.ops import Op, SetFormula
from server.engine.catalog import TableState
from server.formula import FormulaError
from server.hub.services import Services
from server.hub.session import Session
from server.store.formulas import FormulaRuntime
from server.store.tenant import TenantStore

if TYPE_CHECKING:  # the engine loads at the first function (server/formula/__init__.py)
    from server.formula import CustomFunction

SERVER_CLIENT = "server-functions"
"""The ``client`` id of the recompute batches submitted after a function changes."""


def register(services: Services, runtime: FormulaRuntime) -> None:
    """Install the runtime and the three message handlers."""
    services.formulas = runtime
    services.handlers[FunctionDefine] = on_define
    services.handlers[FunctionDrop] = on_drop
    services.handlers[FunctionList] = on_list


def _runtime(session: Session) -> FormulaRuntime:
    runtime = session.services.formulas
    assert runtime is not None, "register() installs the runtime"
    return runtime


def info(function: CustomFunction) -> FunctionInfo:
    """A function as the wire describes it."""
    return FunctionInfo(
        name=function.name, params=list(function.params), definition=function.source
    )


async def recompute_reaching(store: TenantStore, reach: dict[str, list[str]], by: str) -> int:
    """Recompute the formula columns in ``reach`` (table id -> column ids) through the
    store's write path; returns how many columns were recomputed."""
    futures = []
    count = 0
    for table_id, columns in reach.items():
        state = store.table(table_id)
        if state is None:
            continue
        ops: list[Op] = []
        for cid in columns:
            column = state.column(cid)
            if column is not None and column.formula is not None:
                ops.append(SetFormula(column=cid, formula=column.formula))
        if ops:
            count += len(ops)
            op_id = "fn-" + secrets.token_urlsafe(12)
            futures.append(store.submit(table_id, SERVER_CLIENT, op_id, ops, by))
    if futures:
        await asyncio.gather(*futures)
    return count


async def on_define(session: Session, message: FunctionDefine) -> None:
    """Define or replace a function, then recompute the formulas reaching it."""
    runtime = _runtime(session)
    async with session.stores.use(session.tenant) as store:
        tables = store.tables()

        def define(conn: sqlite3.Connection) -> tuple[CustomFunction, dict[str, list[str]]]:
            function = runtime.define(conn, message.definition)
            return function, runtime.reaching(conn, tables, [function.name])

        try:
            function, reach = await store.run_exclusive(define)
        except FormulaError as exc:
            session.error("formula_error", str(exc)[:500], message.id)
            return
        count = await recompute_reaching(store, reach, session.principal.subject)
    session.send(FunctionDefined(id=message.id, function=info(function), recomputed=count))


async def on_drop(session: Session, message: FunctionDrop) -> None:
    """Drop a function, then recompute the formulas that called it (now ``#NAME?``)."""
    runtime = _runtime(session)
    async with session.stores.use(session.tenant) as store:
        tables: list[TableState] = store.tables()

        def drop(conn: sqlite3.Connection) -> dict[str, list[str]] | None:
            reach = runtime.reaching(conn, tables, [message.name])
            return reach if runtime.drop(conn, message.name) else None

        reach = await store.run_exclusive(drop)
        if reach is None:
            session.error("unknown_function", "no custom function with that name", message.id)
            return
        await recompute_reaching(store, reach, session.principal.subject)
    session.send(Ok(id=message.id))


async def on_list(session: Session, message: FunctionList) -> None:
    """Answer the tenant's functions."""
    runtime = _runtime(session)
    async with session.stores.use(session.tenant) as store:
        functions = await store.run_exclusive(runtime.functions)
    session.send(FunctionListing(id=message.id, functions=[info(f) for f in functions]))
