"""Custom formula functions on the wire: define, drop and list a tenant's functions.

Client -> server (scopes): ``function_define`` (schema:write), ``function_drop``
(schema:write), ``function_list`` (tables:read). Server -> client: ``function_defined``
(answers define), ``function_listing`` (answers list); drop is answered by ``ok``
(``unknown_function`` if there is none). A bad definition is refused with
``formula_error``. Defining, redefining or dropping a function recomputes every formula
column that reaches it; the new values arrive as ordinary ``changes`` of those tables.

Formula columns themselves need no messages of their own: they are ``formula`` columns set
with the ``set_formula`` op, and their computed values travel as ``update_cells`` ops. On the
wire a computed cell is a number, text or null; booleans are the text ``TRUE``/``FALSE`` and
error values their code text (``"#DIV/0!"``, ``"#LIMIT!"``...). See docs/formulas.md.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from protocol.ids import RequestId
from protocol.limits import MAX_FORMULA_CHARS

FunctionDefinition = Annotated[str, Meta(min_length=1, max_length=MAX_FORMULA_CHARS)]
"""``NAME(param, ...) = body`` in the formula language."""

FunctionName = Annotated[str, Meta(pattern=r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")]
"""A custom function's name (case-insensitive)."""

# --- client -> server ---------------------------------------------------------------------


class FunctionDefine(Struct, tag="function_define"):
    """Define or replace a custom function; answered by ``function_defined``."""

    id: RequestId
    definition: FunctionDefinition


class FunctionDrop(Struct, tag="function_drop"):
    """Delete a custom function; answered by ``ok``. Formulas calling it give ``#NAME?``."""

    id: RequestId
    name: FunctionName


class FunctionList(Struct, tag="function_list"):
    """List the tenant's custom functions; answered by ``function_listing``."""

    id: RequestId


FunctionClientMessage = FunctionDefine | FunctionDrop | FunctionList

# --- server -> client ---------------------------------------------------------------------


class FunctionInfo(Struct):
    """A custom function: upper-case name, parameter names, and its definition text."""

    name: str
    params: list[str]
    definition: str


class FunctionDefined(Struct, tag="function_defined"):
    """A function was defined; ``recomputed`` formula columns reach it and were recomputed."""

    id: int
    function: FunctionInfo
    recomputed: int = 0


class FunctionListing(Struct, tag="function_listing"):
    """The tenant's custom functions, sorted by name."""

    id: int
    functions: list[FunctionInfo]


FunctionServerMessage = FunctionDefined | FunctionListing
