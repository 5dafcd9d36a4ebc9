"""Keeping formulas working when a column they reference is renamed (pure).

Formulas reference columns by name in their text. Renaming a column rewrites the text of
every formula of the table that references it, so formulas keep working and show the new
name, as in a spreadsheet. Only the ``{...}`` references that resolve to the renamed column
(by the compiler's rule: exact name, else a unique case-insensitive match) are rewritten;
the rest of the text is kept byte for byte. The op engine reports the rewritten columns as
``FormulaRewritten`` steps and the store broadcasts their new text as ``set_formula`` ops.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.ops import ColumnType
from server.engine.catalog import ColumnState, TableState
from server.formula.errors import FormulaSyntaxError
from server.formula.limits import DEFAULT_LIMITS, Limits
from server.formula.tokenizer import Kind, tokenize


def resolve_name(names: Mapping[str, str], name: str) -> str | None:
    """The column id ``name`` resolves to, by the compiler's rule: exact, else a unique
    case-insensitive match."""
    found = names.get(name)
    if found is not None:
        return found
    folded = name.casefold()
    matches = {cid for n, cid in names.items() if n.casefold() == folded}
    return matches.pop() if len(matches) == 1 else None


def _reference_end(text: str, start: int) -> int:
    """The offset just past the ``{...}`` reference starting at ``start`` (``}}`` escapes)."""
    i = start + 1
    while True:
        j = text.find("}", i)
        if j < 0:  # pragma: no cover - the tokenizer accepted it
            return len(text)
        if text.startswith("}}", j):
            i = j + 2
            continue
        return j + 1


def quote_name(name: str) -> str:
    """A column name as a formula reference: ``{name}`` with ``}`` doubled."""
    return "{" + name.replace("}", "}}") + "}"


def rewrite_references(
    text: str, names: Mapping[str, str], column_id: str, new_name: str, limits: Limits
) -> str:
    """``text`` with every reference resolving (under ``names``) to ``column_id`` renamed
    to ``new_name``; unchanged if it has none or does not tokenize."""
    try:
        tokens = tokenize(text, limits)
    except FormulaSyntaxError:
        return text
    out: list[str] = []
    pos = 0
    for token in tokens:
        if token.kind is Kind.COLUMN and resolve_name(names, token.text) == column_id:
            out.append(text[pos : token.pos])
            out.append(quote_name(new_name))
            pos = _reference_end(text, token.pos)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def rename_references(
    before: TableState, after: TableState, column_id: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[TableState, tuple[ColumnState, ...]]:
    """After column ``column_id`` was renamed (``before`` -> ``after``): ``after`` with the
    formulas that referenced it rewritten, and the formula columns whose text changed."""
    renamed = after.column(column_id)
    if renamed is None or not any(c.type is ColumnType.FORMULA for c in after.columns):
        return after, ()
    names = {c.name: c.id for c in before.columns}
    changed: list[ColumnState] = []
    columns: list[ColumnState] = []
    for column in after.columns:
        if column.type is ColumnType.FORMULA and column.formula is not None:
            text = rewrite_references(column.formula, names, column_id, renamed.name, limits)
            if text != column.formula:
                column = ColumnState(column.id, column.name, column.type, column.sql, text)
                changed.append(column)
        columns.append(column)
    if not changed:
        return after, ()
    return after.evolve(columns=tuple(columns)), tuple(changed)
