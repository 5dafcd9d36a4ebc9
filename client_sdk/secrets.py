"""The tenant's secret store through the SDK: ``client.secrets``.

    await client.secrets.set("OPENAI_API_KEY", key, kind="ai_provider_key")
    for entry in await client.secrets.list():   # names, kinds, masked values
        print(entry.name, entry.masked)
    value = await client.secrets.reveal("OPENAI_API_KEY")   # needs secrets:read; audited
    await client.secrets.delete("OPENAI_API_KEY")

Errors raise :class:`~client_sdk.errors.ServerError` with a wire code: ``forbidden``,
``invalid_secret``, ``secret_not_found``, ``secret_unreadable`` (the stored ciphertext did
not authenticate), ``secret_key_missing`` (it names a data key version that does not exist),
``secrets_unavailable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.secrets import (
    SecretDelete,
    SecretEntry,
    SecretKindName,
    SecretList,
    SecretListing,
    SecretReveal,
    SecretSet,
    SecretStored,
    SecretValue,
)

if TYPE_CHECKING:
    from client_sdk.client import Client

__all__ = ["SecretEntry", "Secrets"]


class Secrets:
    """Set, list, reveal and delete the tenant's secrets over the client's connection."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def set(self, name: str, value: str, *, kind: SecretKindName = "env_var") -> SecretEntry:
        """Create or replace a secret; returns its (masked) listing entry."""
        result = await self._client.request_as(
            lambda rid: SecretSet(id=rid, name=name, kind=kind, value=value), SecretStored
        )
        entry: SecretEntry = result.secret
        return entry

    async def list(self) -> list[SecretEntry]:
        """Every secret, sorted by name, with masked values only."""
        result = await self._client.request_as(lambda rid: SecretList(id=rid), SecretListing)
        entries: list[SecretEntry] = result.secrets
        return entries

    async def reveal(self, name: str) -> str:
        """The value of a secret (requires ``secrets:read``; the server audits it)."""
        result = await self._client.request_as(
            lambda rid: SecretReveal(id=rid, name=name), SecretValue
        )
        value: str = result.value
        return value

    async def delete(self, name: str) -> None:
        """Delete a secret (``secret_not_found`` if there is none)."""
        await self._client.request(lambda rid: SecretDelete(id=rid, name=name))
