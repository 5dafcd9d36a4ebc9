"""API key administration over the connection (``client.keys``); needs ``keys:admin``.

Every call acts on the connected credential's own tenant. A created or rotated key's
plaintext is returned once, in :attr:`NewKey.secret`; lists never carry secrets::

    new = await client.keys.create("ci", ["tables:read"], tables=[table.id])
    await client.keys.revoke(new.info.id)      # its sockets close at once, on every node
    fresh = await client.keys.rotate(key_id)   # old key revoked, same grants
    await client.keys.update(key_id, ["tables:read"])  # narrow (never widen), at once

Rotating the key this client is connected with switches the client to the new key: the
server closes the old key's connection (4003) and the client reconnects with the new one and
resumes its tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.identity import (
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyRevoke,
    KeyRevoked,
    KeyRotate,
    KeyUpdate,
    KeyUpdated,
)
from protocol.identity import (
    Keys as KeysMessage,
)

if TYPE_CHECKING:
    from client_sdk.client import Client

__all__ = ["KeyInfo", "Keys", "NewKey", "key_id_of"]


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created or rotated: its metadata and its plaintext (shown this once)."""

    info: KeyInfo
    secret: str
    replaces: str | None = None

    def __repr__(self) -> str:
        return f"NewKey(info={self.info!r}, secret='<redacted>', replaces={self.replaces!r})"


def key_id_of(api_key: str | None) -> str | None:
    """The public key id inside an API key (``ht_<env>_<id>_<secret>``), if it has one."""
    if not api_key:
        return None
    parts = api_key.split("_", 3)
    return parts[2] if len(parts) == 4 and parts[0] == "ht" else None


class Keys:
    """The key administration calls of one client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        tables: Iterable[str] | None = None,
        expires_at: float | None = None,
        rate: int | None = None,
    ) -> NewKey:
        """Create a key with at most this credential's scopes and tables; ``rate`` holds it
        to that many ops per minute when tighter than the plan's (agent keys)."""
        scope_list = sorted(set(scopes))
        table_list = sorted(set(tables)) if tables is not None else None
        answer = await self._client.request(
            lambda rid: KeyCreate(
                id=rid,
                name=name,
                scopes=scope_list,
                tables=table_list,
                expires_at=expires_at,
                rate=rate,
            )
        )
        assert isinstance(answer, KeyCreated)
        return NewKey(answer.key, answer.secret)

    async def list(self) -> list[KeyInfo]:
        """Every key of the tenant (revoked and expired included), oldest first."""
        answer = await self._client.request(lambda rid: KeyList(id=rid))
        assert isinstance(answer, KeysMessage)
        return answer.keys

    async def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key; every socket opened with it closes at once (4003)."""
        answer = await self._client.request(lambda rid: KeyRevoke(id=rid, key=key_id))
        assert isinstance(answer, KeyRevoked)
        return answer.key

    async def rotate(self, key_id: str) -> NewKey:
        """Replace a key by a new one with the same grants; the old one is revoked at once.

        When ``key_id`` is this client's own key, the client switches to the new key.
        """
        answer = await self._client.request(lambda rid: KeyRotate(id=rid, key=key_id))
        assert isinstance(answer, KeyCreated)
        if key_id_of(self._client.api_key) == key_id:
            self._client.set_api_key(answer.secret)
        return NewKey(answer.key, answer.secret, answer.replaces)

    async def update(self, key_id: str, scopes: Iterable[str]) -> KeyInfo:
        """Narrow a key to ``scopes`` (each one it already has; never wider). Its open
        connections lose the other scopes at once, on every node (``grants_changed``)."""
        wanted = sorted(scopes)
        answer = await self._client.request(
            lambda rid: KeyUpdate(id=rid, key=key_id, scopes=wanted)
        )
        assert isinstance(answer, KeyUpdated)
        return answer.key
