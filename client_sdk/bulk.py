"""Rows chosen by a server-side filter, for the ``*_where`` helpers and agent tools.

The ids come from ``query`` pages (``where`` evaluated by the hub, only ``_id`` read), so
the filter's meaning is the server's. Reading and then editing is not one transaction: a
row that stops or starts matching in between is edited (or not) as it was when read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client_sdk.errors import HypertabError

if TYPE_CHECKING:
    from client_sdk.client import Client

PAGE = 500


class TooManyRows(HypertabError):
    """A filter matched more rows than the caller's cap; nothing was changed."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"the filter matches more than {cap} rows; nothing was changed")
        self.cap = cap


async def matching_ids(
    client: Client, table: str, where: dict[str, Any], *, cap: int | None = None
) -> list[str]:
    """Ids of the rows of ``table`` matching ``where``, in table order; ``TooManyRows``
    (before any edit) when there are more than ``cap``."""
    ids: list[str] = []
    after: str | None = None
    while True:
        limit = PAGE if cap is None else min(PAGE, cap + 1 - len(ids))
        page = await client.query(
            table, where=where, columns=["_id"], limit=max(limit, 1), after=after
        )
        ids.extend(row.id for row in page.rows)
        if cap is not None and len(ids) > cap:
            raise TooManyRows(cap)
        if page.next is None:
            return ids
        after = page.next
