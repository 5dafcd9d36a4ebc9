"""Id and name types of the wire.

``NewType``s keep ids apart in the type checker; the ``Annotated`` aliases carry the
constraints msgspec checks while decoding.
"""

from __future__ import annotations

from typing import Annotated, NewType

from msgspec import Meta

from protocol.limits import ID_PATTERN, MAX_FORMULA_CHARS, NAME_PATTERN

TableId = NewType("TableId", str)
ColumnId = NewType("ColumnId", str)
RowId = NewType("RowId", str)
ClientId = NewType("ClientId", str)
OpId = NewType("OpId", str)

Id = Annotated[str, Meta(pattern=ID_PATTERN)]
"""A client- or server-chosen id: 1-64 chars of ``A-Z a-z 0-9 _ -``."""

Name = Annotated[str, Meta(pattern=NAME_PATTERN)]
"""A user-facing name: 1-128 printable characters."""

FormulaText = Annotated[str, Meta(min_length=1, max_length=MAX_FORMULA_CHARS)]
"""Formula source text."""

RequestId = Annotated[int, Meta(ge=0, le=2**53)]
"""A client-chosen request id, echoed in the response."""

Version = Annotated[int, Meta(ge=0, le=2**53)]
"""A table version: the number of batches committed to it."""
