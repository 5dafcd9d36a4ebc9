"""Hypertab's Python SDK: connect, follow tables as live replicas, edit them durably.

async with await Client.connect("ws://127.0.0.1:8765/v1/ws", api_key=KEY) as client:
    people = await client.get_or_create_table("People", [("Name", "text"), ("Age", "number")])
    row = await people.insert({"Name": "Ada", "Age": 36})
    await people.update(row, {"Age": 37})
    print(people.records())

Scripts and notebooks without asyncio: :class:`SyncClient` (same surface, blocking).
"""

from client_sdk.bulk import TooManyRows
from client_sdk.client import Client
from client_sdk.errors import (
    AuthenticationError,
    ConnectionLost,
    HandshakeFailed,
    HypertabError,
    RateLimited,
    RateLimitWarning,
    ServerError,
)
from client_sdk.names import column_id_for
from client_sdk.records import Record, RowEvent
from client_sdk.sync import SyncClient, SyncTable
from client_sdk.table import Table

__all__ = [
    "AuthenticationError",
    "Client",
    "ConnectionLost",
    "HandshakeFailed",
    "HypertabError",
    "RateLimitWarning",
    "RateLimited",
    "Record",
    "RowEvent",
    "ServerError",
    "SyncClient",
    "SyncTable",
    "Table",
    "TooManyRows",
    "column_id_for",
]
