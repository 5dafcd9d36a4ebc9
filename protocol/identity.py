"""Identity messages of the wire: in-band re-authentication and API key administration.

Client -> server: ``auth`` (a fresh token for the same subject and tenant, sent before the
current one expires), ``key_create``, ``key_list``, ``key_revoke``, ``key_rotate``,
``key_update`` (need the ``keys:admin`` scope; they act on the caller's own tenant only).

Server -> client: ``authenticated`` (the connection now runs on the new token),
``key_created`` (the new key's plaintext, shown this once), ``keys``, ``key_revoked``,
``key_updated``; and, unrequested, ``grants_changed`` when the connection's own key was
narrowed (by anyone, on any node).

A key's plaintext appears on the wire only in ``key_created``; ``KeyInfo`` never carries it.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from protocol.ids import RequestId

MAX_TOKEN_CHARS = 8192
MAX_KEY_NAME_CHARS = 100
MAX_SCOPES = 32
MAX_KEY_TABLES = 1000
MAX_KEY_RATE = 1_000_000

Token = Annotated[str, Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]
KeyRef = Annotated[str, Meta(min_length=1, max_length=64)]

# --- client -> server -------------------------------------------------------------------


class Auth(Struct, tag="auth"):
    """Re-authenticate in band: ``token`` replaces the connection's credential.

    It must be valid now and name the same subject and tenant; then the connection lives
    until the new token's expiry. Answered by ``authenticated``, or ``error``
    (``auth_failed``), after which a connection whose token already expired is closed
    with 4001.
    """

    id: RequestId
    token: Token

    def __repr__(self) -> str:  # the token never reaches a log through repr
        return f"Auth(id={self.id!r}, token='<redacted>')"


class KeyCreate(Struct, tag="key_create", omit_defaults=True):
    """Create an API key of the caller's tenant (scopes and tables at most the caller's).

    ``expires_at`` is Unix seconds; ``tables`` restricts the key to those table ids;
    ``rate`` holds the key to that many ops per minute when tighter than the plan's (agent
    keys). A creator with a ``rate`` of its own can only create keys at most as fast.
    """

    id: RequestId
    name: Annotated[str, Meta(min_length=1, max_length=MAX_KEY_NAME_CHARS)]
    scopes: Annotated[list[str], Meta(min_length=1, max_length=MAX_SCOPES)]
    tables: Annotated[list[str], Meta(max_length=MAX_KEY_TABLES)] | None = None
    expires_at: float | None = None
    rate: Annotated[int, Meta(ge=1, le=MAX_KEY_RATE)] | None = None


class KeyList(Struct, tag="key_list"):
    """List the keys of the caller's tenant (metadata only, never secrets)."""

    id: RequestId


class KeyRevoke(Struct, tag="key_revoke"):
    """Revoke a key of the caller's tenant; its sockets close at once (4003)."""

    id: RequestId
    key: KeyRef


class KeyRotate(Struct, tag="key_rotate"):
    """Replace a key by a new one with the same grants; the old one is revoked at once."""

    id: RequestId
    key: KeyRef


class KeyUpdate(Struct, tag="key_update"):
    """Narrow a key's scopes to ``scopes`` (never wider); open sockets narrow at once."""

    id: RequestId
    key: KeyRef
    scopes: Annotated[list[str], Meta(min_length=1, max_length=MAX_SCOPES)]


# --- server -> client -------------------------------------------------------------------


class Authenticated(Struct, tag="authenticated", omit_defaults=True):
    """The connection now runs on the token sent in ``auth``."""

    id: int
    subject: str
    scopes: list[str]
    expires_at: float | None = None
    tables: list[str] | None = None


class KeyInfo(Struct, omit_defaults=True):
    """An API key's metadata. ``status`` is ``live``, ``revoked`` or ``expired``."""

    id: str
    name: str
    status: str
    scopes: list[str]
    created_by: str
    created_at: float
    tables: list[str] | None = None
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    replaced_by: str | None = None
    rate: int | None = None


class KeyCreated(Struct, tag="key_created", omit_defaults=True):
    """A new key (``key_create`` or ``key_rotate``). ``secret`` is shown this once.

    ``replaces`` is the id of the key a rotation revoked.
    """

    id: int
    key: KeyInfo
    secret: str
    replaces: str | None = None

    def __repr__(self) -> str:
        return f"KeyCreated(id={self.id!r}, key={self.key!r}, secret='<redacted>')"


class Keys(Struct, tag="keys"):
    """The caller's tenant's keys, oldest first."""

    id: int
    keys: list[KeyInfo]


class KeyRevoked(Struct, tag="key_revoked"):
    """The key is revoked (it may have been already)."""

    id: int
    key: KeyInfo


class KeyUpdated(Struct, tag="key_updated"):
    """The key after ``key_update``."""

    id: int
    key: KeyInfo


class GrantsChanged(Struct, tag="grants_changed", omit_defaults=True):
    """Pushed when this connection's key was narrowed: what it may do from now on.
    Subscriptions to tables it may no longer read were dropped."""

    scopes: list[str]
    tables: list[str] | None = None
    dropped: list[str] = []


IdentityClientMessage = Auth | KeyCreate | KeyList | KeyRevoke | KeyRotate | KeyUpdate
IdentityServerMessage = Authenticated | KeyCreated | Keys | KeyRevoked | KeyUpdated | GrantsChanged
