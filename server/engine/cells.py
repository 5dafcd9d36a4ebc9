"""Cell values: checking them against a column's type and converting to and from storage.

Storage forms: text, number and datetime as themselves, boolean as 0/1, json as its JSON
text. Datetimes are ISO-8601 text (``datetime.fromisoformat`` must accept them).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec

from protocol.limits import (
    MAX_ABS_NUMBER,
    MAX_JSON_CELL_BYTES,
    MAX_JSON_DEPTH,
    MAX_SAFE_INTEGER,
)
from protocol.ops import ColumnType

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


class CellError(ValueError):
    """A value does not fit its column; the message says why (never echoes the value)."""


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise CellError(f"json nested deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CellError("json object keys must be text")
            _check_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CellError("json numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CellError("json integers must be within +-2**53")
    elif value is not None and not isinstance(value, (str, bool)):
        raise CellError("json values must be null, bool, number, text, list or object")


def to_stored(kind: ColumnType, value: Any) -> Any:
    """Check ``value`` against a column type and return its storage form."""
    if value is None:
        return None
    if kind is ColumnType.TEXT:
        if not isinstance(value, str):
            raise CellError("text column needs a string")
        return value
    if kind is ColumnType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CellError("number column needs a number")
        if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_ABS_NUMBER):
            raise CellError("numbers must be finite")
        if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
            raise CellError("integers must be within +-2**53")
        return value
    if kind is ColumnType.BOOLEAN:
        if not isinstance(value, bool):
            raise CellError("boolean column needs true or false")
        return int(value)
    if kind is ColumnType.DATETIME:
        if not isinstance(value, str) or len(value) > 64:
            raise CellError("datetime column needs ISO-8601 text")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise CellError("datetime column needs ISO-8601 text") from None
        return value
    if kind is ColumnType.JSON:
        _check_json(value, 0)
        encoded = _json_encoder.encode(value)
        if len(encoded) > MAX_JSON_CELL_BYTES:
            raise CellError(f"json cell over {MAX_JSON_CELL_BYTES} bytes")
        return encoded.decode()
    if kind is ColumnType.FORMULA:
        raise CellError("formula columns are computed by the server")
    raise CellError(f"unknown column type {kind}")  # pragma: no cover


def from_stored(kind: ColumnType, value: Any) -> Any:
    """The wire value of a stored cell."""
    if value is None:
        return None
    if kind is ColumnType.BOOLEAN:
        return bool(value)
    if kind is ColumnType.JSON:
        return _json_decoder.decode(value)
    return value
