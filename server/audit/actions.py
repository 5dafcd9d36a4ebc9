"""The names of audited actions."""

from __future__ import annotations

import enum


class Action(enum.StrEnum):
    """The audited actions. Stored as their string values."""

    TENANT_CREATED = "tenant.created"
    TENANT_DELETED = "tenant.deleted"
    TENANT_PLAN_CHANGED = "tenant.plan_changed"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    KEY_ROTATED = "key.rotated"
    KEY_UPDATED = "key.updated"
    AUTH_FAILED = "auth.failed"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    # Action names, not credentials (ruff S105 guesses from the word "secret").
    SECRET_READ = "secret.read"  # noqa: S105
    SECRET_WRITTEN = "secret.written"  # noqa: S105
    ADMIN_READ = "admin.read"
    EXPORT = "export"
    RATE_LIMIT_EXCEEDED = "rate_limit.exceeded"
    # Security events that exist to raise an alert (server/alerts), and incident response.
    HANDSHAKE_FAILURE_BURST = "alert.handshake_failures"
    AUDIT_CHAIN_BROKEN = "alert.audit_chain_broken"
    ABUSE_CLOSED = "alert.abuse_close"
    ALERT_TEST = "alert.test"
    MASTER_KEY_ROTATED = "keyring.rotated"
    INCIDENT_CONTAINED = "incident.contained"
    WEBHOOK_ADDED = "webhook.added"
    WEBHOOK_REMOVED = "webhook.removed"
    WEBHOOK_ENABLED = "webhook.enabled"
