"""Query filters and sorts: the ``where`` and ``order_by`` of a ``query`` message.

A filter is a tree of maps tagged by ``op``::

    {"op": "and", "args": [F, ...]}     {"op": "or", "args": [F, ...]}     {"op": "not", "arg": F}
    {"op": "eq" | "ne" | "lt" | "le" | "gt" | "ge", "column": C, "value": V}
    {"op": "is_null", "column": C}      {"op": "in", "column": C, "values": [V, ...]}
    {"op": "contains" | "starts_with", "column": C, "value": "text"}

``C`` names a column by id or by name (an id match wins); ``"_id"`` is the row id. What each
condition means for each column type is in docs/protocol.md ("Queries"); the server compiles
the tree to SQL with bound parameters (server/store/query.py).

Shape limits are checked in two places: the sizes msgspec can check (list lengths, text
lengths) at decode time, and the ones spanning the tree (:data:`MAX_FILTER_NODES`,
:data:`MAX_FILTER_DEPTH`, :data:`MAX_FILTER_VALUES`) by :func:`filter_problem`, which the
server runs before compiling.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from protocol.ids import Name
from protocol.limits import (
    MAX_ABS_NUMBER,
    MAX_CELL_CHARS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_NODES,
    MAX_FILTER_VALUES,
    MAX_MATCH_CHARS,
    MAX_SAFE_INTEGER,
)

ROW_ID = "_id"
"""The column reference that means the row id."""

ColumnRef = Name
"""A column id, a column name, or ``"_id"``."""

FilterValue = (
    None
    | bool
    | Annotated[int, Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
    | Annotated[float, Meta(ge=-MAX_ABS_NUMBER, le=MAX_ABS_NUMBER)]
    | Annotated[str, Meta(max_length=MAX_CELL_CHARS)]
)
"""A value to compare with. ``null`` decodes (so the server can say to use ``is_null``) but
is refused by every comparison."""


class _Node(Struct, tag_field="op", forbid_unknown_fields=True):
    """Common base: every filter node is a map tagged by ``op``; unknown fields are refused
    (a misspelt field in a filter is a mistake, not a newer peer)."""


class And(_Node, tag="and"):
    """Every condition in ``args`` holds."""

    args: Annotated[list[Filter], Meta(min_length=1, max_length=MAX_FILTER_NODES)]


class Or(_Node, tag="or"):
    """At least one condition in ``args`` holds."""

    args: Annotated[list[Filter], Meta(min_length=1, max_length=MAX_FILTER_NODES)]


class Not(_Node, tag="not"):
    """``arg`` does not hold (a row where ``arg`` is false, nulls included)."""

    arg: Filter


class Compare(_Node):
    """Base of the six comparisons: ``column`` compared with ``value``."""

    column: ColumnRef
    value: FilterValue


class Eq(Compare, tag="eq"):
    """The cell equals ``value``."""


class Ne(Compare, tag="ne"):
    """The cell is not null and does not equal ``value``."""


class Lt(Compare, tag="lt"):
    """The cell is less than ``value``."""


class Le(Compare, tag="le"):
    """The cell is less than or equal to ``value``."""


class Gt(Compare, tag="gt"):
    """The cell is greater than ``value``."""


class Ge(Compare, tag="ge"):
    """The cell is greater than or equal to ``value``."""


class IsNull(_Node, tag="is_null"):
    """The cell is null (empty)."""

    column: ColumnRef


class In(_Node, tag="in"):
    """The cell equals one of ``values`` (an empty list matches no row)."""

    column: ColumnRef
    values: Annotated[list[FilterValue], Meta(max_length=MAX_FILTER_VALUES)]


class Match(_Node):
    """Base of the two text matches (case-insensitive, see docs/protocol.md)."""

    column: ColumnRef
    value: Annotated[str, Meta(max_length=MAX_MATCH_CHARS)]


class Contains(Match, tag="contains"):
    """The cell is text containing ``value``."""


class StartsWith(Match, tag="starts_with"):
    """The cell is text starting with ``value``."""


Filter = And | Or | Not | Eq | Ne | Lt | Le | Gt | Ge | IsNull | In | Contains | StartsWith
"""Any filter node."""


class OrderBy(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One sort column; ``desc`` sorts it descending. Nulls sort last either way."""

    column: ColumnRef
    desc: bool = False


def filter_problem(where: Filter) -> str | None:
    """Why ``where`` is over the tree-wide limits, or None when it is within them.

    Walks the tree without recursion, so even a tree nested past the limit costs one pass
    over what was decoded (which the frame size already bounds).
    """
    nodes = 0
    values = 0
    stack: list[tuple[Filter, int]] = [(where, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_FILTER_NODES:
            return f"the filter has more than {MAX_FILTER_NODES} conditions"
        if depth > MAX_FILTER_DEPTH:
            return f"the filter is nested deeper than {MAX_FILTER_DEPTH}"
        match node:
            case And(args=args) | Or(args=args):
                stack.extend((arg, depth + 1) for arg in args)
            case Not(arg=arg):
                stack.append((arg, depth + 1))
            case In(values=items):
                values += len(items)
            case Compare() | Match():
                values += 1
        if values > MAX_FILTER_VALUES:
            return f"the filter carries more than {MAX_FILTER_VALUES} values"
    return None
