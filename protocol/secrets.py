"""The secret store on the wire: set, list, reveal and delete a tenant's secrets.

Client -> server (scopes): ``secret_set`` (secrets:write), ``secret_list`` (secrets:read or
secrets:write), ``secret_reveal`` (secrets:read; audited as ``secret.read``),
``secret_delete`` (secrets:write). Server -> client: ``secret_stored`` (answers set),
``secret_listing`` (answers list: masked values only), ``secret_value`` (answers reveal);
delete is answered by ``ok``. Values are only ever sent in ``secret_set`` and
``secret_value``; the ``repr`` of both hides them so a stray log line cannot show one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from protocol.ids import RequestId

SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"  # noqa: S105 - a regex
"""Secret names: identifier-like, 1-128 characters, case-sensitive."""

MAX_SECRET_CHARS = 65_536
"""Longest secret value in characters (the server also bounds it to 64 KiB of UTF-8)."""

SecretName = Annotated[str, Meta(pattern=SECRET_NAME_PATTERN)]
SecretKindName = Literal["ai_provider_key", "api_account_auth_header", "env_var"]
SecretValueText = Annotated[str, Meta(max_length=MAX_SECRET_CHARS)]


def _hidden(self: Struct) -> str:
    fields = ", ".join(
        f"{name}=<hidden>" if name == "value" else f"{name}={getattr(self, name)!r}"
        for name in self.__struct_fields__
    )
    return f"{type(self).__name__}({fields})"


# --- client -> server ---------------------------------------------------------------------


class SecretSet(Struct, tag="secret_set"):
    """Create or replace a secret; answered by ``secret_stored``."""

    id: RequestId
    name: SecretName
    kind: SecretKindName
    value: SecretValueText

    __repr__ = _hidden


class SecretList(Struct, tag="secret_list"):
    """List the tenant's secrets (names, kinds, masked values); answered by
    ``secret_listing``."""

    id: RequestId


class SecretReveal(Struct, tag="secret_reveal"):
    """Read one secret's value (audited); answered by ``secret_value``."""

    id: RequestId
    name: SecretName


class SecretDelete(Struct, tag="secret_delete"):
    """Delete a secret; answered by ``ok`` (``secret_not_found`` if there is none)."""

    id: RequestId
    name: SecretName


SecretClientMessage = SecretSet | SecretList | SecretReveal | SecretDelete

# --- server -> client ---------------------------------------------------------------------


class SecretEntry(Struct):
    """A secret as listed: never its value; ``masked`` shows at most the last 4 characters
    of long values. Times are Unix seconds; ``key_version`` is the data key version."""

    name: str
    kind: str
    masked: str
    key_version: int
    created_at: float
    updated_at: float


class SecretStored(Struct, tag="secret_stored"):
    """A secret was created or replaced."""

    id: int
    secret: SecretEntry


class SecretListing(Struct, tag="secret_listing"):
    """The tenant's secrets, sorted by name."""

    id: int
    secrets: list[SecretEntry]


class SecretValue(Struct, tag="secret_value"):
    """A revealed secret value."""

    id: int
    name: str
    kind: str
    value: str

    __repr__ = _hidden


SecretServerMessage = SecretStored | SecretListing | SecretValue
