"""CPU to accept or refuse one 1 MiB frame of json cells, before and after the cheap check.

Prints one JSON line. Each case is one ``apply`` frame (msgpack, at most 1 MiB) of
``insert_rows`` whose rows carry one json cell each; the figure is the CPU time
(``time.process_time``, best of ``--repeat``) of ``plan_batch`` on the decoded ops, i.e.
the op engine's checking of the cells, with:

* ``before``: the check this replaced, kept here as the reference: a Python walk of every
  element (depth, key types, finite floats, integer range), then the encoding, then the
  size check;
* ``after``: ``server.engine.cells`` as it is (encode, size and batch budget first, then
  C-level passes).

Cases: ``huge_cell`` (one cell of a million zeros, 2 MiB encoded: refused by its size),
``ints`` (cells of 32,000 small integers, the most elements a frame can carry),
``objects`` (lists of small objects), ``bad_last`` (31 valid int cells, then one holding a
NaN: the whole batch is refused), ``bools`` (cells of ``false``: 1 msgpack byte, 6 JSON
bytes, so the frame expands past the batch budget). Run:
``.venv/bin/python bench/jsoncells.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from protocol.codec import MSGPACK, Codec
from protocol.limits import (
    MAX_FRAME_BYTES,
    MAX_JSON_CELL_BYTES,
    MAX_JSON_DEPTH,
    MAX_SAFE_INTEGER,
)
from protocol.messages import Apply
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.engine import cells
from server.engine.batch import BatchError, plan_batch

_encoder = msgspec.json.Encoder()


def _walk(value: Any, depth: int) -> None:
    """The per-element Python walk json cells had before (reference for ``before``)."""
    if depth > MAX_JSON_DEPTH:
        raise cells.CellError("deep")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise cells.CellError("key")
            _walk(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _walk(v, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise cells.CellError("finite")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INTEGER:
            raise cells.CellError("range")
    elif value is not None and not isinstance(value, (str, bool)):
        raise cells.CellError("type")


def before_json_text(value: Any, budget: Any = None) -> str:
    """The old order: walk everything, then encode, then look at the size."""
    _walk(value, 0)
    encoded = _encoder.encode(value)
    if len(encoded) > MAX_JSON_CELL_BYTES:
        raise cells.CellError("size")
    return encoded.decode()


def frame_of(values: list[Any]) -> bytes:
    rows = [NewRow(id=f"r{i}", values={"j": v}) for i, v in enumerate(values)]
    message = Apply(id=1, table="t", client="c", op="o", ops=[InsertRows(rows=rows)])
    return msgspec.msgpack.encode(message)


def fill(cell: Any, last: Any = None) -> list[Any]:
    """As many copies of ``cell`` as fit one frame (then ``last``, if given)."""
    one = len(frame_of([cell])) - len(frame_of([]))
    count = (MAX_FRAME_BYTES - len(frame_of([])) - 200) // one - (last is not None)
    return [cell] * count + ([last] if last is not None else [])


CASES: dict[str, list[Any]] = {
    "huge_cell": [[0] * 1_040_000],
    "ints": fill([0] * 32_000),
    "objects": fill([{"a": 1.5, "b": "xx", "c": [True, None]}] * 1_500),
    "bad_last": fill([0] * 32_000, last=[0] * 1000 + [math.nan]),
    "bools": fill([False] * 10_000),
}


def measure(ops: list[Any], repeat: int) -> tuple[float, str]:
    create = [CreateTable(name="T", columns=[ColumnDef(id="j", name="J", type=ColumnType.JSON)])]
    table = plan_batch("t", None, create, next_sql=1, name_taken=lambda _: False).table
    best = math.inf
    outcome = ""
    for _ in range(repeat):
        start = time.process_time()
        try:
            plan_batch("t", table, ops, next_sql=9, name_taken=lambda _: False)
            outcome = "accepted"
        except BatchError as exc:
            outcome = "refused: " + exc.message.split(":", 1)[-1].strip()[:60]
        best = min(best, time.process_time() - start)
    return best, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    codec = Codec(MSGPACK)
    result: dict[str, Any] = {"bench": "jsoncells", "repeat": args.repeat}
    current = cells.json_text
    for name, values in CASES.items():
        frame = frame_of(values)
        assert len(frame) <= MAX_FRAME_BYTES, (name, len(frame))
        message = codec.decode_client(frame)
        assert isinstance(message, Apply)
        cells.json_text = before_json_text  # type: ignore[assignment]
        before, before_outcome = measure(message.ops, args.repeat)
        cells.json_text = current
        after, after_outcome = measure(message.ops, args.repeat)
        result[name] = {
            "frame_bytes": len(frame),
            "cells": len(values),
            "before_ms": round(before * 1000, 1),
            "after_ms": round(after * 1000, 1),
            "ratio": round(before / after, 1) if after else None,
            "before": before_outcome,
            "after": after_outcome,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
