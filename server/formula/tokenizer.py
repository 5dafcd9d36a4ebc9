"""Tokenizer: formula text to a flat list of tokens.

How it works: one left-to-right scan with a position index. Every token kind is recognised by
its first character, so the scan never backtracks and runs in linear time. Strings use
``"..."`` with ``""`` for a quote; column references ``{...}`` use ``}}`` for a brace and
keep every character, spaces included (any legal column name can be referenced; the
compiler's name resolution forgives stray spaces only when nothing matches exactly).
Error literals (``#N/A``, ``#DIV/0!``...) are one token each.
The text length is checked before anything else, so the token list is bounded too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from server.formula.errors import FormulaSyntaxError
from server.formula.limits import Limits


class Kind(Enum):
    """Token kinds."""

    NUMBER = "number"
    TEXT = "text"
    COLUMN = "column"
    IDENT = "identifier"
    OP = "operator"
    ERROR = "error value"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end of formula"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text (unescaped for TEXT and COLUMN), where it starts."""

    kind: Kind
    text: str
    pos: int


_NUMBER_RE: Final = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Dots are allowed inside names so spreadsheet names like ERROR.TYPE work; a name can never
# start with a dot, so ``1 .real`` is a syntax error rather than an attribute access.
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_TWO_CHAR_OPS: Final = frozenset({"<>", "<=", ">="})
_ONE_CHAR_OPS: Final = frozenset("+-*/^&=<>%")
# The error literals spreadsheets accept, longest first so "#N/A" never shadows another.
_ERROR_LITERALS: Final = ("#DIV/0!", "#VALUE!", "#NULL!", "#NAME?", "#REF!", "#NUM!", "#N/A")
_SPACE: Final = frozenset(" \t\r\n")
_DIGITS: Final = frozenset("0123456789")  # ASCII only: "²".isdigit() is true


def tokenize(text: str, limits: Limits) -> list[Token]:
    """Split ``text`` into tokens ending with an END token; raise ``FormulaSyntaxError``."""
    if len(text) > limits.max_formula_length:
        raise FormulaSyntaxError(f"formula is longer than {limits.max_formula_length} characters")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            assert m is not None  # the first character is a digit or ".digit"
            tokens.append(Token(Kind.NUMBER, m.group(), i))
            i = m.end()
        elif c == '"':
            i = _scan_quoted(text, i, '"', Kind.TEXT, tokens)
        elif c == "{":
            i = _scan_quoted(text, i, "}", Kind.COLUMN, tokens)
        elif c.isascii() and (c.isalpha() or c == "_"):
            m = _IDENT_RE.match(text, i)
            assert m is not None
            tokens.append(Token(Kind.IDENT, m.group(), i))
            i = m.end()
        elif c == "#":
            code = next((e for e in _ERROR_LITERALS if text[i : i + len(e)].upper() == e), None)
            if code is None:
                raise FormulaSyntaxError("unknown error value (expected one like #N/A)", i)
            tokens.append(Token(Kind.ERROR, code, i))
            i += len(code)
        elif text[i : i + 2] in _TWO_CHAR_OPS:
            tokens.append(Token(Kind.OP, text[i : i + 2], i))
            i += 2
        elif c in _ONE_CHAR_OPS:
            tokens.append(Token(Kind.OP, c, i))
            i += 1
        elif c == "(":
            tokens.append(Token(Kind.LPAREN, c, i))
            i += 1
        elif c == ")":
            tokens.append(Token(Kind.RPAREN, c, i))
            i += 1
        elif c == ",":
            tokens.append(Token(Kind.COMMA, c, i))
            i += 1
        else:
            raise FormulaSyntaxError(f"unexpected character {c!r}", i)
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _scan_quoted(text: str, start: int, close: str, kind: Kind, out: list[Token]) -> int:
    """Scan ``"..."`` or ``{...}`` from ``start``; a doubled closer stands for itself."""
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find(close, i)
        if j < 0:
            what = "text" if kind is Kind.TEXT else "column reference"
            raise FormulaSyntaxError(f"unterminated {what}", start)
        parts.append(text[i:j])
        if text.startswith(close * 2, j):
            parts.append(close)
            i = j + 2
            continue
        value = "".join(parts)
        if kind is Kind.COLUMN and not value:
            raise FormulaSyntaxError("empty column reference {}", start)
        out.append(Token(kind, value, start))
        return j + 1
