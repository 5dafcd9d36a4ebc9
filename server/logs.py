"""Structured JSON logs that never carry a credential, key material or a message body, and
whose volume a peer cannot drive.

How it works
------------
:func:`configure_logging` puts one handler on the root logger: a :class:`JsonFormatter`
(one JSON object per line: time, level, logger, message, exception, extra fields) behind a
:class:`RedactingFilter`. Redaction happens in two layers so that no single slip leaks:

1. Structured values, before formatting (the filter): in the message's ``args``, in ``extra``
   fields and in a non-string ``msg``, ``bytes`` become ``[N bytes]`` (raw keys, frames),
   protocol messages (``msgspec.Struct``) become ``[Type]``, and in mappings every value under
   a sensitive name (``token``, ``password``, ``secret``, ``*_key``, ``authorization``, ...) or
   a body name (``body``, ``payload``, ``frame``, ``cells``, ...) is replaced. Then every text
   (the formatted message, the exception's traceback, the stack) goes through
   :func:`redact_text`, which also blanks JSON or dict-literal bodies and ``b'…'`` bytes literals.
2. The final line (the formatter): :func:`redact_credentials` runs once more on the whole
   output, catching whatever an object's ``str()`` let through.

Volume is bounded at every level: before redaction, a
:class:`~server.logbudget.LogRateLimit` lets at most 50 records a second of each kind
(logger and message template) through and counts the rest (``server/logbudget.py``, which
also bounds the WebSocket layer's per-frame debug records before they are made).

:func:`redact_credentials` replaces, by shape: API keys (``ht_live_…``, ``ht_test_…``), JWTs
(``eyJ…`` with three dot-separated base64url segments), ``Bearer``/``Basic`` header values,
``name=value`` pairs with a sensitive name, PEM private keys, and
opaque strings that look like key material: runs of 32+ hex digits, and runs of 32+ base64 or
base64url characters mixing at least two of upper case, lower case and digits (a 256-bit key
in base64 is 43-44 such characters). A cost: SHA-256 digests and 32-hex ids are blanked too;
log a short prefix of them instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from typing import Any, TextIO

import msgspec

from server.logbudget import LogRateLimit

REDACTED = "[REDACTED]"

_SENSITIVE_NAME = re.compile(
    r"(?i)(?:^|[_\-.])(?:password|passwd|passphrase|secret|token|jwt|bearer|authorization|"
    r"cookie|credentials?|api_?key|apikey|private_?key|key|signature)s?$"
)
_BODY_NAME = re.compile(
    r"(?i)^(?:body|payload|frame|raw|data|content|cells|values|rows|ops|text|message_body)$"
)

# (pattern, replacement): order matters, the widest shapes first.
_CREDENTIAL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        REDACTED,
    ),
    (re.compile(r"ht_(?:live|test)_[A-Za-z0-9_\-]*"), REDACTED),
    (re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)?"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/\-=%]+"), rf"\1\2{REDACTED}"),
    (
        re.compile(
            r"(?i)(\b[\w\-]*(?:password|passwd|passphrase|secret|token|authorization|cookie|"
            r"api_?key|apikey|private_?key|access_?key|key)(?:\\?[\"'])?\s*[:=]\s*)"
            # A quoted value (also JSON-escaped \" quotes) is blanked up to its closing
            # quote, which stays, so the JSON line around it remains valid.
            r"(\\?[\"'])?(?(2)(?:(?!\2).)*|[^\s,;&{}\[\]()\"'\\]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
)
_HEX = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")
_OPAQUE = (
    re.compile(r"[A-Za-z0-9+/]{32,}={0,2}"),
    re.compile(r"[A-Za-z0-9_\-]{32,}={0,2}"),
)
# A bytes literal as repr() writes it (raw keys, frames). Only in free text, never on the
# final JSON line, where `b"` is just a word ending in b before a closing quote.
_BYTES_TEXT = re.compile(r"(?:(?<=[\s(\[{,=:])|^)b(?:'(?:\\.|[^\\'])*'|\"(?:\\.|[^\\\"])*\")")
# A JSON object or a Python dict literal whose first key is quoted: a message body.
_BODY_TEXT = re.compile(r"\{\s*[\"'][^\"'\n]*[\"']\s*:.*\}|\[\s*\{\s*[\"'].*\}\s*\]", re.S)


def _opaque(match: re.Match[str]) -> str:
    run = match.group(0)
    kinds = sum(
        (
            any(c.isupper() for c in run),
            any(c.islower() for c in run),
            any(c.isdigit() for c in run),
        )
    )
    return REDACTED if kinds >= 2 else run


def redact_tokens(text: str) -> str:
    """``text`` with credentials blanked by shape, keeping hex digests and opaque ids.

    Covers API keys, JWTs, ``Bearer``/``Basic`` values, sensitive ``name=value`` pairs and
    PEM private keys (used for audit details, where digests are evidence).
    """
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_credentials(text: str) -> str:
    """:func:`redact_tokens`, and opaque key-shaped runs (hex, base64) blanked too."""
    text = _HEX.sub(REDACTED, redact_tokens(text))
    for pattern in _OPAQUE:
        text = pattern.sub(_opaque, text)
    return text


def redact_text(text: str) -> str:
    """:func:`redact_credentials`, and message bodies (JSON or dict literals) blanked too."""
    text = _BYTES_TEXT.sub("[bytes]", _BODY_TEXT.sub("[body]", text))
    return redact_credentials(text)


def sanitize(value: object, name: str | None = None, _depth: int = 0) -> object:
    """A log-safe copy of a structured value (see the module docstring).

    ``name`` is the field or mapping key the value sits under; sensitive and body names
    hide the value whatever it is.
    """
    if name is not None:
        if _SENSITIVE_NAME.search(name):
            return REDACTED
        if _BODY_NAME.match(name) and not isinstance(value, bool | int | float | None):
            return "[body]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes]"
    if isinstance(value, msgspec.Struct):
        return f"[{type(value).__name__}]"
    if _depth > 4:
        return "[...]"
    if isinstance(value, Mapping):
        return {str(k): sanitize(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [sanitize(v, None, _depth + 1) for v in value]
    return redact_text(repr(value) if not isinstance(value, BaseException) else str(value))


_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so nothing secret reaches any formatter after it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``msg``/``args``, extra fields, exception and stack text. Keeps the record."""
        record.msg = redact_text(_render(record))
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact_text(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        _name_connection(record)
        for attr, value in list(record.__dict__.items()):
            if attr not in _STANDARD_ATTRS:
                record.__dict__[attr] = sanitize(value, attr)
        return True


def _name_connection(record: logging.LogRecord) -> None:
    """websockets attaches its connection object (a weakref proxy) as ``websocket``: keep
    its id as ``connection`` instead of an unreadable repr (``server/hub/logcontext.py``
    adds the tenant on the hub's own connection logger)."""
    conn = record.__dict__.pop("websocket", None)
    if conn is not None and "connection" not in record.__dict__:
        with contextlib.suppress(ReferenceError, AttributeError):
            record.connection = str(conn.id)


def _render(record: logging.LogRecord) -> str:
    msg = record.msg if isinstance(record.msg, str) else str(sanitize(record.msg))
    args: Any = record.args
    if not args:
        return msg
    if isinstance(args, Mapping):
        safe: Any = sanitize(args)
    else:
        safe = tuple(sanitize(a) for a in args)
    try:
        rendered: str = msg % safe
    except (TypeError, ValueError, KeyError):
        return f"{msg} {safe}"
    return rendered


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the whole line is passed through :func:`redact_credentials`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line: ts, level, logger, msg, exc, stack, extra fields."""
        out: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        for attr, value in record.__dict__.items():
            if attr not in _STANDARD_ATTRS and attr not in out:
                out[attr] = value
        line = json.dumps(out, ensure_ascii=False, default=_fallback)
        return redact_credentials(line)


def _fallback(value: object) -> str:
    return redact_text(str(sanitize(value)))


_HANDLER_MARK = "_hypertab_handler"


def configure_logging(
    level: int | str = "INFO", *, stream: TextIO | None = None
) -> logging.Handler:
    """Send all logs as redacted JSON lines to ``stream`` (stderr by default).

    Replaces the handler a previous call installed, so calling it again is safe. Returns
    the handler (tests attach it to a buffer).
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
            existing.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(LogRateLimit())  # first: a dropped record is never redacted or formatted
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
