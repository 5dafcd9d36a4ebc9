"""Keeping formulas working when a column they reference is renamed (pure).

Formulas reference columns by name in their text. Renaming a column rewrites the text of
every formula of the table whose references it affects, so formulas keep working and show
the new name, as in a spreadsheet. A ``{...}`` reference is rewritten when the column it
resolves to before the rename (by the compiler's rule,
:func:`server.formula.names.resolve_column`) is not the one it would resolve to after it:
the references to the renamed column, and any other that the new name would capture or
make ambiguous (renaming ``x`` to ``QTY`` while ``{qty}`` meant ``Qty``). A rewritten
reference spells its column's exact name, which always resolves to it, so the formula means
what it meant and reads the same columns: nothing needs recomputing and nothing goes stale.
The rest of the text is kept byte for byte. The op engine reports the rewritten columns as
``FormulaRewritten`` steps and the store broadcasts their new text as ``set_formula`` ops.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.ops import ColumnType
from server.engine.catalog import ColumnState, TableState
from server.formula.errors import FormulaSyntaxError
from server.formula.limits import DEFAULT_LIMITS, Limits
from server.formula.names import quote_name, resolve_column
from server.formula.tokenizer import Kind, tokenize


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


def rewrite_references(
    text: str,
    before: Mapping[str, str],
    after: Mapping[str, str],
    limits: Limits,
    renamed: str | None = None,
) -> str:
    """``text`` with every reference to column ``renamed``, and every other whose column
    (under the name map ``before``) differs from its resolution under ``after``, spelled as
    that column's exact name in ``after``; unchanged if there is none or the text does not
    tokenize."""
    try:
        tokens = tokenize(text, limits)
    except FormulaSyntaxError:
        return text
    names = {cid: name for name, cid in after.items()}
    out: list[str] = []
    pos = 0
    for token in tokens:
        if token.kind is not Kind.COLUMN:
            continue
        meant = resolve_column(before, token.text)
        if meant is None or meant not in names:
            continue
        if meant == renamed:
            if token.text == names[meant]:
                continue
        elif resolve_column(after, token.text) == meant:
            continue
        out.append(text[pos : token.pos])
        out.append(quote_name(names[meant]))
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
    old_names = {c.name: c.id for c in before.columns}
    new_names = {c.name: c.id for c in after.columns}
    changed: list[ColumnState] = []
    columns: list[ColumnState] = []
    for column in after.columns:
        if column.type is ColumnType.FORMULA and column.formula is not None:
            text = rewrite_references(column.formula, old_names, new_names, limits, column_id)
            if text != column.formula:
                column = ColumnState(column.id, column.name, column.type, column.sql, text)
                changed.append(column)
        columns.append(column)
    if not changed:
        return after, ()
    return after.evolve(columns=tuple(columns)), tuple(changed)
