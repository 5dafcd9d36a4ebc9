"""websockets' per-connection ``connection open`` / ``connection closed`` INFO lines: dropped
unless DEBUG is on, by the logger filter and, before a record is even made, by each
connection's FrameLogGate. Pure logging, no event loop."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.auth.handshake import websocket_logger
from server.logbudget import FrameLogGate


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, Capture]]:
    logger = websocket_logger()
    handler = Capture()
    logger.addHandler(handler)
    level = logger.level
    yield logger, handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("through_gate", [False, True])
def test_chatter_only_at_debug(
    captured: tuple[logging.Logger, Capture], through_gate: bool
) -> None:
    logger, handler = captured
    log: logging.Logger | FrameLogGate = FrameLogGate(logger) if through_gate else logger
    logger.setLevel(logging.INFO)
    log.info("connection open")
    log.info("connection closed")
    log.info("server listening on %s", "127.0.0.1:1")
    assert handler.messages == ["server listening on 127.0.0.1:1"]
    logger.setLevel(logging.DEBUG)
    log.info("connection open")
    assert handler.messages[-1] == "connection open"
