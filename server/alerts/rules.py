"""Which audit entries are alerts, of which kind and severity, and their JSON body. Pure.

The set of alerting actions is turned into the trigger's ``WHEN`` clause (:mod:`.schema`),
so this file is the one place that says what pages an operator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.audit.actions import Action

#: Actions that always alert, with their alert kind.
ALERT_KINDS: dict[str, str] = {
    Action.ADMIN_READ: "admin_read",  # "tenant_export" when details.what says so
    Action.TENANT_DELETED: "tenant_deleted",
    Action.HANDSHAKE_FAILURE_BURST: "handshake_failures",
    Action.AUDIT_CHAIN_BROKEN: "audit_chain_broken",
    Action.ABUSE_CLOSED: "abuse_close",
    Action.MASTER_KEY_ROTATED: "master_key_rotated",
    Action.INCIDENT_CONTAINED: "incident_contained",
    Action.ALERT_TEST: "test",
}

ADMIN_KEY_KIND = "admin_key_created"
"""``key.created`` alerts only for a key holding ``keys:admin`` that is not a new tenant's
first key (signups would page on every signup)."""

SEVERITY: dict[str, str] = {
    "admin_read": "high",
    "tenant_export": "high",
    "tenant_deleted": "high",
    ADMIN_KEY_KIND: "medium",
    "handshake_failures": "medium",
    "audit_chain_broken": "critical",
    "abuse_close": "low",
    "master_key_rotated": "medium",
    "incident_contained": "critical",
    "test": "low",
}

BODY_FORMAT = "hypertab-alert/1"


def kind_sql() -> str:
    """The SQL ``CASE`` naming the kind of ``NEW`` (constant text: no user input)."""
    cases = " ".join(f"WHEN '{action}' THEN '{kind}'" for action, kind in ALERT_KINDS.items())
    return (
        "CASE WHEN NEW.action = 'admin.read' AND json_extract(NEW.details, '$.what') = "
        f"'tenant_export' THEN 'tenant_export' WHEN NEW.action = 'key.created' THEN "
        f"'{ADMIN_KEY_KIND}' ELSE CASE NEW.action {cases} END END"
    )


def when_sql() -> str:
    """The trigger's ``WHEN`` condition (constant text)."""
    actions = ", ".join(f"'{a}'" for a in ALERT_KINDS)  # our enum values, not input
    return (
        f"NEW.action IN ({actions}) OR"  # noqa: S608
        " (NEW.action = 'key.created'"
        " AND EXISTS (SELECT 1 FROM json_each(NEW.details, '$.scopes')"
        " WHERE value = 'keys:admin')"
        " AND COALESCE((SELECT created_by FROM api_keys WHERE id = NEW.target), '')"
        " != 'system:create_tenant')"
    )


@dataclass(frozen=True, slots=True)
class Alert:
    """One outbox row: an alert and where its delivery stands."""

    row: int
    event_id: str
    kind: str
    audit_id: int
    ts: float
    actor: str
    action: str
    target: str
    ip: str | None
    details: str
    state: str = "pending"
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    delivered_at: float | None = None

    @property
    def severity(self) -> str:
        """``low`` … ``critical``."""
        return SEVERITY.get(self.kind, "medium")

    @property
    def tenant(self) -> str | None:
        """The tenant the alert is about, when there is one."""
        value = self.details_obj().get("tenant")
        if isinstance(value, str) and value:
            return value
        if self.action in (Action.ADMIN_READ, Action.TENANT_DELETED) and self.target:
            return self.target
        return None

    def details_obj(self) -> dict[str, Any]:
        """The audit entry's details."""
        try:
            value = json.loads(self.details)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def body(self) -> dict[str, Any]:
        """The JSON object POSTed to the webhook sink (docs/alerts.md)."""
        return {
            "format": BODY_FORMAT,
            "id": self.event_id,
            "kind": self.kind,
            "severity": self.severity,
            "at": self.ts,
            "tenant": self.tenant,
            "audit": {
                "log": "control",
                "id": self.audit_id,
                "actor": self.actor,
                "action": self.action,
                "target": self.target,
                "ip": self.ip,
                "details": self.details_obj(),
            },
        }

    def summary(self) -> str:
        """One line for the log sink and the CLI (ids and kinds, nothing secret)."""
        tenant = self.tenant
        where = f" tenant {tenant}" if tenant else ""
        return f"{self.kind} ({self.severity}){where} by {self.actor} [{self.event_id}]"
