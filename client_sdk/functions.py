"""A tenant's custom formula functions, from the SDK: ``client.functions``.

    await client.functions.define("MARGIN(p, c) = (p - c) / p")
    await client.functions.list()        # [FunctionInfo(name="MARGIN", params=[...], ...)]
    await client.functions.drop("MARGIN")

Defining, redefining or dropping a function recomputes the formulas that use it; their new
values reach subscribed tables as ordinary changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.formulas import (
    FunctionDefine,
    FunctionDefined,
    FunctionDrop,
    FunctionInfo,
    FunctionList,
    FunctionListing,
)

if TYPE_CHECKING:
    from client_sdk.client import Client


class Functions:
    """Custom functions of the client's tenant. Errors raise ``ServerError``
    (``formula_error`` for a bad definition, ``unknown_function``, ``forbidden``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def define(self, definition: str) -> FunctionInfo:
        """Define or replace a function (``NAME(a, b) = body``); returns it as stored."""
        result = await self._client.request(
            lambda rid: FunctionDefine(id=rid, definition=definition)
        )
        assert isinstance(result, FunctionDefined)
        return result.function

    async def drop(self, name: str) -> None:
        """Delete a function; formulas still calling it give ``#NAME?``."""
        await self._client.request(lambda rid: FunctionDrop(id=rid, name=name))

    async def list(self) -> list[FunctionInfo]:
        """The tenant's functions, sorted by name."""
        result = await self._client.request(lambda rid: FunctionList(id=rid))
        assert isinstance(result, FunctionListing)
        return result.functions
