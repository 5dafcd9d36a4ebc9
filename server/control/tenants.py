"""Tenant records and the validation of human-entered names."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from server.auth.principal import Plan, TenantId
from server.control.errors import InvalidInput

MAX_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant as stored. ``deleted_at`` is set once the tenant is deleted (Unix time)."""

    id: TenantId
    name: str
    plan: Plan
    created_at: float
    deleted_at: float | None = None
    region: str = ""

    @property
    def active(self) -> bool:
        """Not deleted."""
        return self.deleted_at is None


def clean_name(value: object, *, what: str = "name", max_length: int = MAX_NAME_LENGTH) -> str:
    """A display name, NFC-normalised and stripped: 1..max_length chars, no control chars.

    Names are shown in admin UIs and logs, so control, format and unassigned characters
    (which can hide or reorder text) are refused rather than silently removed.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    name = unicodedata.normalize("NFC", value).strip()
    if not 1 <= len(name) <= max_length:
        raise InvalidInput(f"{what} must be 1 to {max_length} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput(f"{what} must not contain control or invisible characters")
    return name
