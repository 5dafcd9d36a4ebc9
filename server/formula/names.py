"""How a ``{...}`` reference finds its column, and how a column name is written as one.

A reference keeps every character between the braces, so any legal column name (spaces,
braces, quotes included) can be referenced exactly. Resolution tries, in order, and takes
the first rule that gives exactly one column:

1. the exact name;
2. the name compared case-insensitively;
3. the name compared case-insensitively with leading and trailing spaces ignored on both
   sides (so ``{ Qty }``, as earlier versions accepted, still finds ``Qty``).

A rule that matches several columns makes the reference ambiguous (``#REF!`` and listed in
``Formula.unknown_columns``); the compiler and the rename rewriter share this function, so
a rewritten formula means what the old one meant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

Id = TypeVar("Id")

_RULES: tuple[Callable[[str], str], ...] = (str.casefold, lambda n: n.strip().casefold())


def resolve_column(names: Mapping[str, Id], name: str) -> Id | None:
    """The id ``name`` refers to under ``names`` (column name -> id), or ``None``."""
    found = names.get(name)
    if found is not None:
        return found
    for key in _RULES:
        wanted = key(name)
        matches = {cid for n, cid in names.items() if key(n) == wanted}
        if matches:
            return matches.pop() if len(matches) == 1 else None
    return None


def quote_name(name: str) -> str:
    """A column name as a formula reference: ``{name}`` with ``}`` doubled."""
    return "{" + name.replace("}", "}}") + "}"
