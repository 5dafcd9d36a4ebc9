"""API keys: format, checksum, peppered hash, and the checks on a stored key. Pure.

How it works
------------
A key reads ``ht_<env>_<key id>_<secret><checksum>``::

    ht_live_k3vq8m2x0c9w4j7p_<43 base62 symbols = 256 random bits><6 base62 = CRC32>

* ``env`` is ``live`` or ``test``: a test key can never open a live server.
* the key id (16 symbols of ``[a-z0-9]``) is public: it is the database lookup key, the
  credential id used for revocation, and safe to show in lists and audit entries.
* the secret is 256 bits from :mod:`secrets`, written as exactly 43 base62 symbols.
* the checksum is CRC32 of everything before it, in 6 base62 symbols. A mistyped or
  truncated key fails here, before any database read, and secret scanners can recognise
  real keys without false positives.

Only ``HMAC-SHA256(pepper, secret)`` is stored. The pepper comes from configuration and never
from the database, so a stolen ``control.db`` alone does not let anyone test guesses. The
stored hash is compared with :func:`hmac.compare_digest`.

This module does no I/O and reads no clock: ``now`` is passed in.
"""

from __future__ import annotations

import hmac
import re
import secrets
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.ids import new_key_id
from server.auth.principal import CredentialKind, KeyId, Plan, Principal, Scope, TenantId

ENVIRONMENTS: frozenset[str] = frozenset({"live", "test"})
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRET_BITS = 256
SECRET_LENGTH = 43  # 62**43 > 2**256: every 256-bit value fits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: every CRC32 fits
MIN_PEPPER_BYTES = 32
#: Anything longer cannot be one of our keys; refuse before running a regex over it.
MAX_KEY_LENGTH = 96

_KEY_RE = re.compile(r"ht_(live|test)_([a-z0-9]{16})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})")


def _base62(value: int, width: int) -> str:
    digits = []
    while value:
        value, rem = divmod(value, 62)
        digits.append(BASE62[rem])
    if len(digits) > width:
        raise ValueError("value does not fit the width")
    return "".join(reversed(digits)).rjust(width, BASE62[0])


_PAIRS = "".join(high + low for high in BASE62 for low in BASE62)
"""Every two-symbol base62 string, by value: value ``v`` at ``[2 * v : 2 * v + 2]``. One
string of 7.7 KB, not 3,844 string objects (0.2 MiB of the idle footprint)."""


def checksum(body: str) -> str:
    """The 6-symbol base62 CRC32 of ``body`` (the key without its checksum).

    = ``_base62(crc, 6)``, two symbols at a time: every handshake with a key computes it,
    and three lookups cost a third of six ``divmod`` rounds in Python.
    """
    high, rest = divmod(zlib.crc32(body.encode("ascii")), 62**4)  # CRC32 < 62**6
    middle, low = divmod(rest, 62**2)
    return (
        _PAIRS[2 * high : 2 * high + 2]
        + _PAIRS[2 * middle : 2 * middle + 2]
        + _PAIRS[2 * low : 2 * low + 2]
    )


def check_environment(environment: str) -> str:
    """``environment`` if it is ``live`` or ``test``; else :class:`AuthConfigError`."""
    if environment not in ENVIRONMENTS:
        raise AuthConfigError(f"environment must be one of {sorted(ENVIRONMENTS)}")
    return environment


def check_pepper(pepper: bytes) -> bytes:
    """``pepper`` if it is at least 32 bytes; else :class:`AuthConfigError`."""
    if not isinstance(pepper, bytes) or len(pepper) < MIN_PEPPER_BYTES:
        raise AuthConfigError(f"the API key pepper must be at least {MIN_PEPPER_BYTES} bytes")
    return pepper


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A key whose shape and checksum are valid. Not yet checked against the store."""

    environment: str
    key_id: KeyId
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a log through repr
        return f"ParsedKey(environment={self.environment!r}, key_id={self.key_id!r})"


def new_secret() -> str:
    """256 fresh random bits as exactly 43 base62 symbols."""
    return _base62(secrets.randbits(SECRET_BITS), SECRET_LENGTH)


def format_key(environment: str, key_id: KeyId, secret: str) -> str:
    """The full key string handed to the user, checksum included."""
    body = f"ht_{environment}_{key_id}_{secret}"
    return body + checksum(body)


def parse_key(token: str | None, *, environment: str) -> ParsedKey:
    """Check a presented key's shape, checksum and environment, without any lookup.

    Raises :class:`AuthError` with ``MISSING``, ``MALFORMED``, ``BAD_CHECKSUM`` or
    ``WRONG_ENVIRONMENT``.
    """
    if not token:
        raise AuthError(AuthFailure.MISSING)
    if not isinstance(token, str) or len(token) > MAX_KEY_LENGTH:
        raise AuthError(AuthFailure.MALFORMED)
    match = _KEY_RE.fullmatch(token)
    if match is None:
        raise AuthError(AuthFailure.MALFORMED)
    env, key_id, secret, check = match.groups()
    # compare_digest: the checksum is not secret, but there is no reason to leak timing.
    if not hmac.compare_digest(checksum(token[:-CHECKSUM_LENGTH]), check):
        raise AuthError(AuthFailure.BAD_CHECKSUM)
    if env != environment:
        raise AuthError(AuthFailure.WRONG_ENVIRONMENT, credential_id=key_id)
    return ParsedKey(environment=env, key_id=KeyId(key_id), secret=secret)


def hash_secret(pepper: bytes, secret: str) -> bytes:
    """``HMAC-SHA256(pepper, secret)``: the only form in which a key is stored."""
    return hmac.digest(pepper, secret.encode("ascii"), "sha256")  # OpenSSL's one-shot HMAC


def secret_matches(pepper: bytes, secret: str, stored_hash: bytes) -> bool:
    """Whether ``secret`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_secret(pepper, secret), stored_hash)


class SecretHasher:
    """:func:`hash_secret` and :func:`secret_matches` for one pepper, keyed once.

    HMAC hashes the key into its inner and outer states before the message; copying states
    keyed at start-up skips those two compressions on every handshake (a quarter of the
    HMAC's cost). The states stand for the pepper: they live where the pepper already does.
    """

    __slots__ = ("_keyed",)

    def __init__(self, pepper: bytes) -> None:
        self._keyed = hmac.new(check_pepper(pepper), digestmod="sha256")

    def __repr__(self) -> str:  # the keyed state stays out of logs
        return "SecretHasher()"

    def hash(self, secret: str) -> bytes:
        """``HMAC-SHA256(pepper, secret)``, as :func:`hash_secret`."""
        mac = self._keyed.copy()
        mac.update(secret.encode("ascii"))
        return mac.digest()

    def matches(self, secret: str, stored_hash: bytes) -> bool:
        """Whether ``secret`` hashes to ``stored_hash`` (constant-time comparison)."""
        return hmac.compare_digest(self.hash(secret), stored_hash)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored, minus its hash. Safe to list, log and show to admins.

    Times are Unix seconds. ``tables`` is ``None`` when every table is allowed.
    ``replaced_by`` is the id of the key that replaced this one by rotation.
    """

    id: KeyId
    tenant: TenantId
    name: str
    environment: str
    scopes: frozenset[Scope]
    tables: frozenset[str] | None
    created_by: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    replaced_by: KeyId | None = None
    rate: int | None = None
    """The key's own limit in ops per minute (applied when tighter than the plan's)."""

    def is_live(self, now: float) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly created key. ``secret`` is the full plaintext key: show it once, store never."""

    record: KeyRecord
    secret: str

    def __repr__(self) -> str:
        return f"IssuedKey(record={self.record!r}, secret='<redacted>')"


def check_usable(record: KeyRecord, *, now: float) -> None:
    """Raise ``REVOKED`` or ``EXPIRED`` unless the key may be used at ``now``.

    Call only after the secret matched, so a guesser learns nothing about a key's state.
    """
    if record.revoked_at is not None:
        raise AuthError(AuthFailure.REVOKED, credential_id=record.id)
    if record.expires_at is not None and now >= record.expires_at:
        raise AuthError(AuthFailure.EXPIRED, credential_id=record.id)


def principal_for(record: KeyRecord, plan: Plan) -> Principal:
    """The principal a verified, usable key stands for."""
    return Principal(
        tenant=record.tenant,
        subject=f"key:{record.id}",
        kind=CredentialKind.API_KEY,
        credential_id=record.id,
        scopes=record.scopes,
        plan=plan,
        tables=record.tables,
        expires_at=record.expires_at,
        rate=record.rate,
    )


def parse_scopes(scopes: Iterable[Scope | str]) -> frozenset[Scope]:
    """Scopes from enum members or their string values; ``ValueError`` on an unknown one."""
    parsed = frozenset(Scope(s) for s in scopes)
    if not parsed:
        raise ValueError("a key needs at least one scope")
    return parsed


def issue(environment: str, pepper: bytes) -> tuple[KeyId, str, bytes]:
    """A new key id, its full plaintext key, and the hash to store."""
    key_id = new_key_id()
    secret = new_secret()
    return key_id, format_key(environment, key_id, secret), hash_secret(pepper, secret)
