"""The pure hash chain and the details guard, by plain function calls."""

from __future__ import annotations

import dataclasses

import pytest

from server.audit import (
    GENESIS_HASH,
    Action,
    AuditEntry,
    AuditError,
    ChainedEntry,
    SecretInDetailsError,
    check_details,
    redact_details,
    verify,
)
from server.audit.chain import link
from server.audit.export import parse, render


def make_chain(n: int) -> list[ChainedEntry]:
    out: list[ChainedEntry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        entry = AuditEntry(
            ts=1_700_000_000.0 + i / 7,
            actor="t1/alice",
            action=Action.TOOL_CALL,
            target=f"tbl_{i}",
            ip="203.0.113.7" if i % 2 else None,
            details={"tool": "update_cells", "n": i, "ünï": "✓"},
        )
        out.append(link(prev, i, entry))
        prev = out[-1].hash
    return out


def test_intact_chain_verifies() -> None:
    assert verify(make_chain(20)) is None
    assert verify([]) is None


def test_edit_is_reported_at_the_entry() -> None:
    chain = make_chain(10)
    chain[4] = dataclasses.replace(chain[4], details='{"n":999}')
    assert verify(chain) == 5


def test_edit_with_rehash_is_reported_at_the_next_link() -> None:
    chain = make_chain(10)
    forged = dataclasses.replace(chain[4], actor="t1/mallory")
    forged = link(forged.prev_hash, 5, AuditEntry(forged.ts, "t1/mallory", forged.action))
    chain[4] = forged
    assert verify(chain) == 6


def test_deletion_is_reported_by_the_missing_id() -> None:
    chain = make_chain(10)
    del chain[3]
    assert verify(chain) == 4


def test_reorder_is_reported() -> None:
    chain = make_chain(10)
    a, b = chain[2], chain[3]
    # Swap contents but keep the id column in order, as a row swap in SQLite would.
    chain[2] = dataclasses.replace(b, id=3)
    chain[3] = dataclasses.replace(a, id=4)
    assert verify(chain) == 3
    chain = make_chain(10)
    chain[2], chain[3] = chain[3], chain[2]  # ids out of order
    assert verify(chain) == 3


def test_partial_chain_verifies_from_its_own_anchor() -> None:
    chain = make_chain(10)[4:]
    assert verify(chain) == 1  # the genesis anchor expects id 1
    assert verify(chain, anchor=None, first_id=None) is None
    assert verify(chain, anchor=chain[0].prev_hash, first_id=5) is None


def test_hash_covers_every_field() -> None:
    base = make_chain(1)[0]
    for change in (
        {"ts": base.ts + 1e-6},
        {"actor": "x"},
        {"action": "export"},
        {"target": "y"},
        {"ip": "198.51.100.1"},
        {"details": "{}"},
        {"prev_hash": "1" * 64},
    ):
        assert verify([dataclasses.replace(base, **change)]) == 1, change


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips(fmt: str) -> None:
    chain = make_chain(12)
    back = parse(render(chain, fmt), fmt)  # type: ignore[arg-type]
    assert back == chain
    assert verify(back) is None


def test_details_must_be_json() -> None:
    with pytest.raises(AuditError):
        link(GENESIS_HASH, 1, AuditEntry(0.0, "a", "export", details={"x": float("nan")}))
    with pytest.raises(AuditError):
        link(GENESIS_HASH, 1, AuditEntry(0.0, "a", "export", details={"x": object()}))


def test_action_names() -> None:
    assert {a.value for a in Action} >= {
        "tenant.created",
        "key.created",
        "key.revoked",
        "key.rotated",
        "auth.failed",
        "tool.call",
        "secret.read",
        "secret.written",
        "admin.read",
        "export",
        "tenant.deleted",
        "rate_limit.exceeded",
    }


def test_details_guard_by_name_and_shape() -> None:
    details = {
        "key_id": "k_1",
        "api_key": "ht_live_abc",
        "nested": {"refreshToken": "x", "Authorization": "Bearer y", "ok": [1, 2]},
        "note": "presented ht_test_zzz9 and eyJa.eyJb.c",
        "password": "hunter2",
        "raw": b"\x00\x01",
        "digest": "ab" * 32,
    }
    safe = redact_details(details)
    text = repr(safe)
    for leak in ("ht_live_abc", "hunter2", "ht_test_zzz9", "eyJa", "'x'", "Bearer y", "\\x00"):
        assert leak not in text
    assert safe["key_id"] == "k_1" and safe["nested"]["ok"] == [1, 2]
    assert safe["digest"] == "ab" * 32  # digests are evidence, not secrets
    with pytest.raises(SecretInDetailsError):
        check_details({"token": "t"})
    with pytest.raises(SecretInDetailsError):
        check_details({"note": "Bearer abcdef"})
    assert check_details({"key_id": "k", "count": 3}) == {"key_id": "k", "count": 3}
