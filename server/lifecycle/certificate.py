"""Signed deletion certificates: proof that a tenant's data was deleted, and of what.

How it works
------------
A certificate is a JSON document with four members::

    {"format": "hypertab-deletion-certificate/1",
     "payload": {...what was deleted, when, for whom, by which key...},
     "signature": "<base64 Ed25519 signature>",
     "public_key": "<base64 raw 32-byte Ed25519 public key>"}

The signature covers ``SIGNING_CONTEXT || canonical_json(payload)`` where canonical JSON
is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)`` and the
payload holds only objects, arrays, strings, integers and booleans (no floats, whose text
form is not canonical). The context prefix stops an Ed25519 signature made for any other
purpose from passing as a certificate.

The payload names the issuer key id (a fingerprint of the public key), so swapping the
embedded public key breaks verification. But anyone can make a self-consistent document
with a key of their own: a verifier that must trust the issuer passes ``trusted_keys`` (the
server's published public key, :func:`public_key_b64`) to :func:`verify_certificate`.

Item digests are of the stored bytes (database file, ciphertext, wrapped key), never of a
plaintext secret: a SHA-256 of a short secret could be brute-forced from the certificate.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.secrets.errors import KeyringError
from server.secrets.files import read_private_file, write_private_file

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

# cryptography (~8 MB of RSS) is imported by the functions that sign or verify, not here:
# a running hub imports this module through the lifecycle service but signs only when a
# tenant is deleted.

CERT_FORMAT = "hypertab-deletion-certificate/1"
"""Value of the ``format`` member of every certificate this module issues."""

SIGNING_CONTEXT = b"hypertab deletion certificate v1\n"
"""Domain-separation prefix of the signed message."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DOC_KEYS = frozenset({"format", "payload", "signature", "public_key"})
_PAYLOAD_KEYS = frozenset(
    {"type", "certificate_id", "tenant", "deleted_at", "deleted_at_unix", "items", "issuer"}
)
_ITEM_KEYS = frozenset({"kind", "name", "size", "sha256"})


class CertificateError(Exception):
    """Root of the errors raised by this module."""


class InvalidCertificateError(CertificateError):
    """The document is malformed, modified, or not signed by a trusted key."""


@dataclass(frozen=True, slots=True)
class DeletedItem:
    """One thing that was deleted: what kind, which one, how big, and its SHA-256.

    ``kind`` e.g. ``tenant_database``, ``secret``, ``data_key``; ``name`` a path relative to
    the data directory or a secret/key name; ``sha256`` of the bytes that were stored.
    """

    kind: str
    name: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        if not self.kind or not isinstance(self.kind, str):
            raise CertificateError("item kind must be a non-empty string")
        if not isinstance(self.name, str):
            raise CertificateError("item name must be a string")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise CertificateError("item size must be a non-negative integer")
        if not isinstance(self.sha256, str) or not _SHA256_HEX.fullmatch(self.sha256):
            raise CertificateError("item sha256 must be 64 lowercase hex digits")

    def to_json(self) -> dict[str, Any]:
        """The item as it appears in the payload."""
        return {"kind": self.kind, "name": self.name, "size": self.size, "sha256": self.sha256}


def file_item(path: Path | str, kind: str, name: str | None = None) -> DeletedItem:
    """Describe a file about to be deleted (size and streamed SHA-256).

    ``name`` defaults to the file name; pass a path relative to the data directory so the
    certificate does not reveal the server's layout.
    """
    path = Path(path)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return DeletedItem(kind, name if name is not None else path.name, size, digest.hexdigest())


def canonical_json(value: Any) -> bytes:
    """Canonical bytes of a JSON value: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def public_key_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw 32-byte public key, base64: publish this so verifiers can pin it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def issuer_key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short fingerprint of the public key: ``ed25519:`` + 16 hex digits of its SHA-256."""
    raw = base64.b64decode(public_key_b64(key))
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _utc_iso(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_certificate(
    signing_key: Ed25519PrivateKey,
    *,
    tenant_id: str,
    tenant_name: str,
    items: Sequence[DeletedItem],
    deleted_at: float,
    certificate_id: str | None = None,
) -> dict[str, Any]:
    """Build and sign a deletion certificate; returns the JSON-ready document.

    ``deleted_at`` is a Unix time (seconds; stored as a whole number and as ISO 8601 UTC).
    """
    when = int(deleted_at)
    payload: dict[str, Any] = {
        "type": "tenant-deletion",
        "certificate_id": certificate_id if certificate_id is not None else str(uuid.uuid4()),
        "tenant": {"id": tenant_id, "name": tenant_name},
        "deleted_at": _utc_iso(when),
        "deleted_at_unix": when,
        "items": [item.to_json() for item in items],
        "issuer": {"algorithm": "Ed25519", "key_id": issuer_key_id(signing_key)},
    }
    _check_payload(payload)
    signature = signing_key.sign(SIGNING_CONTEXT + canonical_json(payload))
    return {
        "format": CERT_FORMAT,
        "payload": payload,
        "signature": base64.b64encode(signature).decode("ascii"),
        "public_key": public_key_b64(signing_key),
    }


def _fail(reason: str) -> InvalidCertificateError:
    return InvalidCertificateError(f"invalid deletion certificate: {reason}")


def _check_payload(payload: Any) -> None:
    if not isinstance(payload, dict) or set(payload) != _PAYLOAD_KEYS:
        raise _fail("payload members are wrong")
    if payload["type"] != "tenant-deletion" or not isinstance(payload["certificate_id"], str):
        raise _fail("payload type or id is wrong")
    tenant = payload["tenant"]
    if (
        not isinstance(tenant, dict)
        or set(tenant) != {"id", "name"}
        or not all(isinstance(v, str) for v in tenant.values())
    ):
        raise _fail("tenant must be {id, name} strings")
    when = payload["deleted_at_unix"]
    if isinstance(when, bool) or not isinstance(when, int) or when < 0:
        raise _fail("deleted_at_unix must be a non-negative integer")
    if payload["deleted_at"] != _utc_iso(when):
        raise _fail("deleted_at does not match deleted_at_unix")
    items = payload["items"]
    if not isinstance(items, list):
        raise _fail("items must be a list")
    for item in items:
        if not isinstance(item, dict) or set(item) != _ITEM_KEYS:
            raise _fail("every item needs exactly kind, name, size, sha256")
        try:
            DeletedItem(**item)
        except (CertificateError, TypeError):
            raise _fail("an item is malformed") from None
    issuer = payload["issuer"]
    if (
        not isinstance(issuer, dict)
        or set(issuer) != {"algorithm", "key_id"}
        or issuer["algorithm"] != "Ed25519"
        or not isinstance(issuer["key_id"], str)
    ):
        raise _fail("issuer must be {algorithm: Ed25519, key_id}")


def _b64(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{what} is not valid base64") from None
    # Reject non-canonical encodings too, so a document has one textual form.
    if len(raw) != size or base64.b64encode(raw).decode("ascii") != value:
        raise _fail(f"{what} has the wrong size or encoding")
    return raw


def verify_certificate(
    doc: Any, *, trusted_keys: Iterable[Ed25519PublicKey | str] | None = None
) -> dict[str, Any]:
    """Check a certificate and return (a copy of) its payload.

    Raises :class:`InvalidCertificateError` if any member was modified, the signature does
    not verify under the embedded public key, the issuer key id does not match that key,
    or ``trusted_keys`` (public keys or their :func:`public_key_b64` form) is given and
    does not contain it.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(doc, dict) or set(doc) != _DOC_KEYS:
        raise _fail("members must be format, payload, signature, public_key")
    if doc["format"] != CERT_FORMAT:
        raise _fail("unknown format")
    signature = _b64(doc["signature"], 64, "signature")
    public_raw = _b64(doc["public_key"], 32, "public_key")
    payload = doc["payload"]
    _check_payload(payload)
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    if payload["issuer"]["key_id"] != issuer_key_id(public):
        raise _fail("issuer key id does not match the public key")
    if trusted_keys is not None:
        trusted = {k if isinstance(k, str) else public_key_b64(k) for k in trusted_keys}
        if doc["public_key"] not in trusted:
            raise _fail("signed by a key that is not trusted")
    try:
        message = SIGNING_CONTEXT + canonical_json(payload)
    except (TypeError, ValueError):
        raise _fail("payload is not canonical JSON") from None
    try:
        public.verify(signature, message)
    except InvalidSignature:
        raise _fail("signature does not verify") from None
    return copy.deepcopy(payload)


def dumps_certificate(doc: dict[str, Any]) -> str:
    """The certificate file's text (indented for people; verification re-canonicalises)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two parsers could pick different duplicates: refuse ambiguity.
            raise _fail(f"duplicate member {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _fail(f"non-standard JSON constant {name}")


def loads_certificate(text: str | bytes) -> dict[str, Any]:
    """Parse a certificate file (strict JSON, no duplicate members); then verify it."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except ValueError as exc:
        if isinstance(exc, InvalidCertificateError):
            raise
        raise _fail("not valid JSON") from None
    if not isinstance(doc, dict):
        raise _fail("not a JSON object")
    return doc


def load_or_create_signing_key(path: Path | str) -> Ed25519PrivateKey:
    """The server's Ed25519 signing key from ``path`` (PKCS#8 PEM, mode 0600).

    Created atomically with mode 0600 when absent. An existing file readable or writable by
    group or others is refused (:class:`~server.secrets.errors.InsecureKeyFileError`).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            write_private_file(path, pem, overwrite=False)
            return key
        except FileExistsError:
            pass  # another process created it first: use theirs
    data = read_private_file(path)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyringError(f"signing key file {str(path)!r} is not a PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyringError(f"signing key file {str(path)!r} is not an Ed25519 key")
    return loaded
