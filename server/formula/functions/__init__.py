"""The built-in function library, by family; :data:`BUILTINS` maps upper-case names."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Final

from server.formula.functions import (
    aggregate,
    conditional,
    dates,
    logic,
    lookup,
    numeric,
    text,
)
from server.formula.functions.spec import Builtin

_FAMILIES: Final = (
    ("math", numeric.FUNCTIONS + aggregate.FUNCTIONS + conditional.FUNCTIONS),
    ("text", text.FUNCTIONS),
    ("logic", logic.FUNCTIONS),
    ("date", dates.FUNCTIONS),
    ("lookup", lookup.FUNCTIONS),
)


def _collect() -> dict[str, Builtin]:
    table: dict[str, Builtin] = {}
    for family, functions in _FAMILIES:
        for spec in functions:
            assert spec.name not in table, spec.name
            table[spec.name] = replace(spec, family=family)
    return table


BUILTINS: Final = MappingProxyType(_collect())
"""Every built-in function by upper-case name (read-only)."""

__all__ = ["BUILTINS", "Builtin"]
