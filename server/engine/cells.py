"""Cell values: checking them against a column's type and converting to and from storage.

Storage forms: text, number and datetime as themselves, boolean as 0/1, json as its JSON
text. Datetimes are ISO-8601 text (``datetime.fromisoformat`` must accept them).

How json cells are checked: a cell is encoded first (msgspec, in C) and refused by size
before anything looks inside it; the batch's :class:`JsonBudget` is charged; then the checks
run as a handful of C-level passes over the value and its text (decode and compare, then
bytes translate/replace for nesting and long integers), never a Python loop per element.
Checking a 1 MiB frame of json cells took about a second of CPU with a Python walk; see
``bench/jsoncells.py``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import msgspec

from protocol.limits import (
    MAX_ABS_NUMBER,
    MAX_JSON_BATCH_BYTES,
    MAX_JSON_CELL_BYTES,
    MAX_JSON_DEPTH,
    MAX_SAFE_INTEGER,
)
from protocol.ops import ColumnType

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


class CellError(ValueError):
    """A value does not fit its column; the message says why (never echoes the value)."""


class JsonBudget:
    """What the json cells of one batch may still cost, in encoded bytes.

    Checking a json cell costs time per element, and every element takes at least one byte
    of its encoding, so the encoded size bounds the work. One frame of cells could otherwise
    expand (``false`` is 1 msgpack byte and 6 JSON bytes) into several MiB of JSON to check
    and store; a batch pays for each cell before the cell is checked.
    """

    __slots__ = ("left",)

    def __init__(self, limit: int = MAX_JSON_BATCH_BYTES) -> None:
        self.left = limit

    def spend(self, size: int) -> None:
        """Pay ``size`` bytes or raise :class:`CellError` when the batch is over budget."""
        self.left -= size
        if self.left < 0:
            raise CellError(
                f"the json cells of one batch total over {MAX_JSON_BATCH_BYTES} encoded bytes;"
                " split the batch"
            )


# Brackets and braces become brackets (the text is valid JSON, so only the nesting matters
# and one replace per pass removes exactly one level); every other byte is deleted.
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Digits become "9", everything else "."; a run of 16 nines marks an integer that may be
# beyond 2**53 (which has 16 digits), or a float's long mantissa.
_DIGIT_RUNS = bytes.maketrans(
    bytes(range(256)), bytes(57 if 48 <= b <= 57 else 46 for b in range(256))
)
_LONG_DIGITS = b"9" * 16
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")


def _outside_strings(encoded: bytes) -> bytes:
    """The text of compact JSON with every string literal removed.

    Escapes are two bytes starting with a backslash; blanking them first leaves each
    remaining quote a delimiter, so the even pieces of a split on quotes are the text
    outside strings.
    """
    if b'"' not in encoded:
        return encoded
    if b"\\" in encoded:
        encoded = encoded.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    return b"".join(encoded.split(b'"')[0::2])


def _check_json(value: Any, encoded: bytes) -> None:
    """Refuse a json cell that is not plain JSON within the limits, in C-speed steps only.

    ``encoded`` is msgspec's encoding of ``value``. Decoding it again gives back an equal
    value exactly when the value holds only null, bools, finite floats, integers, text,
    lists and objects with text keys: msgspec writes NaN and infinities as null, integer
    keys as text, bytes as base64 and datetimes as text, and none of those decode equal.
    Depth (first) and the integer range are read from the text outside strings.
    """
    bare = _outside_strings(encoded)  # msgspec's output is valid JSON whatever the value
    nesting = bare.translate(_AS_BRACKETS, _NOT_BRACKETS)
    depth = 0
    while nesting:  # each pass removes the innermost level (the text is valid JSON)
        depth += 1
        if depth > MAX_JSON_DEPTH:
            raise CellError(f"json nested deeper than {MAX_JSON_DEPTH}")
        nesting = nesting.replace(b"[]", b"")
    # Nesting is bounded now, so comparing (recursive, in C) cannot run out of stack.
    if _json_decoder.decode(encoded) != value:
        raise CellError(
            "json values must be null, bool, finite number, text, list or object with text keys"
        )
    if _LONG_DIGITS in bare.translate(_DIGIT_RUNS):
        for number in _NUMBER.findall(bare):
            if number.lstrip(b"-").isdigit() and abs(int(number)) > MAX_SAFE_INTEGER:
                raise CellError("json integers must be within +-2**53")


def json_text(value: Any, budget: JsonBudget | None = None) -> str:
    """The stored form of a json cell: its compact JSON text, after every check.

    The size is known before anything walks the value: an oversize cell, or one that
    would take the batch over ``budget``, costs only its encoding (C, about 20 ns an
    element) and is refused before it is checked.
    """
    try:
        encoded = _json_encoder.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise CellError(
            "json values must be null, bool, finite number, text, list or object with text keys"
        ) from None
    if len(encoded) > MAX_JSON_CELL_BYTES:
        raise CellError(f"json cell over {MAX_JSON_CELL_BYTES} bytes")
    if budget is not None:
        budget.spend(len(encoded))
    _check_json(value, encoded)
    return encoded.decode()


def to_stored(kind: ColumnType, value: Any, budget: JsonBudget | None = None) -> Any:
    """Check ``value`` against a column type and return its storage form.

    ``budget``, when given, is charged for json cells (one per batch; see
    :class:`JsonBudget`).
    """
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
        return json_text(value, budget)
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
