"""docs/protocol.md names every message, op, error code and close code the code defines."""

from __future__ import annotations

import typing
from pathlib import Path

from protocol.errors import ERRORS, CloseCode
from protocol.messages import ClientMessage, ServerMessage
from protocol.ops import Op

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def tags(union: object) -> list[str]:
    return [t.__struct_config__.tag for t in typing.get_args(union)]


def test_every_message_and_op_is_documented() -> None:
    missing = [
        tag for tag in tags(ClientMessage) + tags(ServerMessage) + tags(Op) if f"`{tag}`" not in DOC
    ]
    assert not missing


def test_every_error_and_close_code_is_documented() -> None:
    assert [code for code in ERRORS if f"| `{code}` |" not in DOC] == []
    assert [int(c) for c in CloseCode if f"| {int(c)} |" not in DOC] == []
