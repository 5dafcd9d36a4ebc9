"""What a session can reach: the shared parts of the hub process, in one place.

Features plug into the hub by adding a field here (wired in ``server/app.py``) and, for new
client messages, a row in the message table (``server/hub/messages.py``) and a handler in
:attr:`Services.handlers` keyed by the message type, so that ``Session.dispatch`` never
grows a branch per feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.hub.fanout import Hub
from server.store.manager import StoreManager

if TYPE_CHECKING:
    from server.control.plane import ControlPlane
    from server.hub.identity import Identity
    from server.hub.metrics import HubMetrics
    from server.hub.session import Session
    from server.lifecycle.service import Lifecycle
    from server.store.formulas import FormulaRuntime

Handler = Callable[["Session", Any], Awaitable[None]]
"""Handles one decoded client message for a session."""


@dataclass(slots=True)
class Services:
    """The hub's shared parts."""

    hub: Hub
    stores: StoreManager
    control: ControlPlane | None = None
    lifecycle: Lifecycle | None = None  # master/data keys, provisioning (server/hub/secrets.py)
    identity: Identity | None = None
    formulas: FormulaRuntime | None = None  # formula columns, custom functions
    metrics: HubMetrics | None = None  # counters for /metrics (server/hub/metrics.py)
    handlers: dict[type, Handler] = field(default_factory=dict)
