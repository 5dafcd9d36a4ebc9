"""Logs are JSON lines and never carry a credential, key material or a message body."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.logs import configure_logging, redact_credentials

API_KEY = "ht_live_" + secrets.token_urlsafe(24)
TEST_KEY = "ht_test_" + secrets.token_urlsafe(24)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
BEARER_VALUE = secrets.token_urlsafe(12)
AES_KEY = bytes(range(1, 33))
BODY = json.dumps({"type": "apply", "ops": [{"op": "update", "value": "confidential-cell"}]})
FORBIDDEN = [
    API_KEY,
    TEST_KEY,
    JWT,
    BEARER_VALUE,
    "confidential-cell",
    AES_KEY.hex(),
    base64.b64encode(AES_KEY).decode(),
    "hunter2",
]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    handler = configure_logging("DEBUG", stream=buf)
    yield buf
    logging.getLogger().removeHandler(handler)


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    text = buf.getvalue()
    for secret in FORBIDDEN:
        assert secret not in text, secret
    # Only this module's records: a library thread left by an earlier test (aiosqlite logs
    # at DEBUG) may write to the root handler meanwhile. The secret check above covers all.
    records = [json.loads(line) for line in text.splitlines()]
    return [r for r in records if r["logger"] == "hypertab.test"]


log = logging.getLogger("hypertab.test")


def test_lines_are_json_with_fields(output: io.StringIO) -> None:
    log.info("tenant %s opened", "t1", extra={"tenant": "t1", "rows_written": 3})
    [line] = lines(output)
    assert line["msg"] == "tenant t1 opened"
    assert line["level"] == "INFO" and line["logger"] == "hypertab.test"
    assert line["tenant"] == "t1" and line["rows_written"] == 3


def test_credentials_in_msg_and_args(output: io.StringIO) -> None:
    log.warning(f"auth with {API_KEY} failed")
    log.warning("auth with %s / %s failed", TEST_KEY, JWT)
    log.warning("header was Authorization: Bearer %s", BEARER_VALUE)
    log.warning("login password=hunter2 user=bob")
    log.warning("%(who)s sent %(tok)s", {"who": "bob", "tok": API_KEY})
    got = lines(output)
    assert len(got) == 5
    assert "[REDACTED]" in str(got[0]["msg"]) and "user=bob" in str(got[3]["msg"])


def test_credentials_in_extra_fields(output: io.StringIO) -> None:
    log.info(
        "upgrade",
        extra={
            "headers": {"Authorization": f"Bearer {BEARER_VALUE}", "Origin": "https://a.b"},
            "token": "opaque-but-named-token",
            "api_key": API_KEY,
            "master_key": AES_KEY,
            "key_id": "k_123",
        },
    )
    [line] = lines(output)
    assert "opaque-but-named-token" not in json.dumps(line)
    assert line["key_id"] == "k_123"
    assert line["headers"] == {"Authorization": "[REDACTED]", "Origin": "https://a.b"}


def test_exception_carrying_a_credential(output: io.StringIO) -> None:
    def verify(token: str) -> None:
        raise ValueError(f"signature mismatch for {token}")

    try:
        try:
            verify(JWT)
        except ValueError as exc:
            raise RuntimeError(f"auth failed, key={API_KEY}, raw={AES_KEY!r}") from exc
    except RuntimeError:
        log.exception("upgrade refused, header: Bearer %s", BEARER_VALUE)
    [line] = lines(output)
    exc = str(line["exc"])
    assert "RuntimeError" in exc and "ValueError" in exc and "verify(JWT)" in exc


def test_key_material_in_exception_args(output: io.StringIO) -> None:
    try:
        raise KeyError(AES_KEY)
    except KeyError:
        log.error("unwrap failed", exc_info=True)
    try:
        raise ValueError(AES_KEY.hex(), base64.b64encode(AES_KEY).decode())
    except ValueError:
        log.error("unwrap failed", exc_info=True)
    assert len(lines(output)) == 2


def test_message_bodies_are_not_logged(output: io.StringIO) -> None:
    class Apply(msgspec.Struct, tag="apply"):
        value: str

    log.info("got frame %s", BODY)
    log.info("got frame %r", BODY.encode())
    log.info("decoded %s", Apply("confidential-cell"))
    log.info("decoded %s", json.loads(BODY))
    log.info("frame", extra={"payload": BODY, "frame": BODY.encode(), "body": json.loads(BODY)})
    try:
        raise ValueError(f"bad message {BODY}")
    except ValueError:
        log.exception("decode failed")
    assert len(lines(output)) == 6


def test_stack_info_is_redacted(output: io.StringIO) -> None:
    def deep(key: str) -> None:
        log.info("here %s", key, stack_info=True)

    deep(API_KEY)
    assert len(lines(output)) == 1


def test_non_string_msg(output: io.StringIO) -> None:
    log.info({"password": "hunter2", "user": "bob"})
    log.info(ValueError(API_KEY))
    assert len(lines(output)) == 2


def test_configure_twice_keeps_one_handler() -> None:
    buf = io.StringIO()
    first = configure_logging("INFO", stream=io.StringIO())
    second = configure_logging("INFO", stream=buf)
    try:
        assert first not in logging.getLogger().handlers
        log.info("once")
        assert len(buf.getvalue().splitlines()) == 1
    finally:
        logging.getLogger().removeHandler(second)


secrets_st = st.one_of(
    st.builds(lambda n: "ht_live_" + secrets.token_urlsafe(n), st.integers(8, 40)),
    st.builds(lambda n: "ht_test_" + secrets.token_urlsafe(n), st.integers(8, 40)),
    st.builds(lambda: secrets.token_bytes(32).hex()),
    st.builds(lambda: base64.b64encode(secrets.token_bytes(32)).decode()),
    st.builds(lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")),
    st.builds(lambda: JWT),
)


@settings(max_examples=300, deadline=None)
@given(
    secrets_st,
    st.sampled_from(["{}", "x={}", "'{}'", '"{}"', "({})", "<{}>", "/{}/", "a {} b"]),
    st.text(alphabet=" :=,;.-_'\"abcXYZ019", max_size=12),
)
def test_redaction_holds_for_any_surrounding(secret: str, template: str, noise: str) -> None:
    text = noise + template.format(secret) + noise
    assert secret not in redact_credentials(text)
