"""Deletion certificates: sign, verify, and refuse every modification. No event loop."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.lifecycle.certificate import (
    CERT_FORMAT,
    DeletedItem,
    InvalidCertificateError,
    dumps_certificate,
    file_item,
    issue_certificate,
    load_or_create_signing_key,
    loads_certificate,
    public_key_b64,
    verify_certificate,
)
from server.secrets.errors import InsecureKeyFileError

KEY = Ed25519PrivateKey.generate()


def make_cert(tmp_path: Path) -> dict[str, Any]:
    db = tmp_path / "tenant-a.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    items = [
        file_item(db, "tenant_database", "tenants/tenant-a.db"),
        DeletedItem("secret", "OPENAI_API_KEY", 77, hashlib.sha256(b"ct").hexdigest()),
        DeletedItem("data_key", "tenant-a/dk1", 63, hashlib.sha256(b"wk").hexdigest()),
    ]
    return issue_certificate(
        KEY,
        tenant_id="tenant-a",
        tenant_name="Acme Ünïcode Ltd",
        items=items,
        deleted_at=1_764_375_966.75,
    )


def test_certificate_verifies_and_round_trips(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    payload = verify_certificate(cert)
    assert payload["tenant"] == {"id": "tenant-a", "name": "Acme Ünïcode Ltd"}
    assert payload["deleted_at"] == "2025-11-29T00:26:06Z"
    assert payload["items"][0]["size"] == 16 + 4096
    assert (
        payload["items"][0]["sha256"]
        == hashlib.sha256((tmp_path / "tenant-a.db").read_bytes()).hexdigest()
    )
    text = dumps_certificate(cert)
    assert verify_certificate(loads_certificate(text), trusted_keys=[KEY.public_key()]) == payload
    assert verify_certificate(loads_certificate(text), trusted_keys=[public_key_b64(KEY)])
    assert loads_certificate(text)["format"] == CERT_FORMAT


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every leaf of the payload, as a path of keys/indexes."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, (*prefix, i))]
    return [prefix]


def _modify(leaf: Any) -> Any:
    if isinstance(leaf, bool):
        return not leaf
    if isinstance(leaf, int):
        return leaf + 1
    assert isinstance(leaf, str)
    if len(leaf) == 64 and all(c in "0123456789abcdef" for c in leaf):
        return ("0" if leaf[0] != "0" else "1") + leaf[1:]  # still well-formed hex
    return leaf + "x"


def test_every_modified_payload_field_is_refused(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    paths = _paths(cert["payload"])
    assert len(paths) >= 15
    for path in paths:
        forged = copy.deepcopy(cert)
        node = forged["payload"]
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = _modify(node[path[-1]])
        with pytest.raises(InvalidCertificateError):
            verify_certificate(forged)


def test_removed_or_added_items_are_refused(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    fewer = copy.deepcopy(cert)
    fewer["payload"]["items"].pop()
    more = copy.deepcopy(cert)
    more["payload"]["items"].append(dict(cert["payload"]["items"][0]))
    extra_member = copy.deepcopy(cert)
    extra_member["payload"]["note"] = "hi"
    for forged in (fewer, more, extra_member):
        with pytest.raises(InvalidCertificateError):
            verify_certificate(forged)


def test_modified_signature_is_refused(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    raw = base64.b64decode(cert["signature"])
    for i in range(0, len(raw) * 8, 7):
        forged = dict(cert)
        flipped = bytearray(raw)
        flipped[i // 8] ^= 1 << (i % 8)
        forged["signature"] = base64.b64encode(bytes(flipped)).decode()
        with pytest.raises(InvalidCertificateError):
            verify_certificate(forged)
    for bad in ("", "!!!", cert["signature"][:-4], base64.b64encode(raw + b"\0").decode()):
        with pytest.raises(InvalidCertificateError):
            verify_certificate({**cert, "signature": bad})


def test_swapped_public_key_is_refused(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidCertificateError):
        verify_certificate({**cert, "public_key": public_key_b64(other)})
    # A forger re-signing everything with their own key makes a self-consistent document;
    # pinning the server's public key refuses it.
    forged = issue_certificate(
        other,
        tenant_id="tenant-a",
        tenant_name="Acme Ünïcode Ltd",
        items=[],
        deleted_at=1_764_375_966,
    )
    assert verify_certificate(forged)  # self-consistent
    with pytest.raises(InvalidCertificateError, match="not trusted"):
        verify_certificate(forged, trusted_keys=[KEY.public_key()])
    # Swapping in the forger's key and issuer id on the real certificate fails too.
    hybrid = copy.deepcopy(cert)
    hybrid["public_key"] = forged["public_key"]
    hybrid["payload"]["issuer"] = forged["payload"]["issuer"]
    with pytest.raises(InvalidCertificateError):
        verify_certificate(hybrid)


def test_malformed_documents_are_refused(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    text = dumps_certificate(cert)
    for bad in (
        "[]",
        "not json",
        text.replace('"format"', '"format": "x", "format"', 1),  # duplicate member
        json.dumps({**cert, "format": "other/1"}),
        json.dumps({k: v for k, v in cert.items() if k != "signature"}),
    ):
        with pytest.raises(InvalidCertificateError):
            verify_certificate(loads_certificate(bad))
    floaty = copy.deepcopy(cert)
    floaty["payload"]["items"][0]["size"] = float(floaty["payload"]["items"][0]["size"])
    with pytest.raises(InvalidCertificateError):
        verify_certificate(floaty)


def test_signing_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert public_key_b64(again) == public_key_b64(key)
    os.chmod(path, 0o644)
    with pytest.raises(InsecureKeyFileError):
        load_or_create_signing_key(path)
