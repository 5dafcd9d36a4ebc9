"""Parser: tokens to a syntax tree, with Excel precedence and hard size bounds.

How it works: a Pratt (precedence-climbing) parser. Binary operators are parsed in a loop,
so a long chain like ``1+1+...+1`` costs no Python recursion; only parentheses, call
arguments and unary operators recurse, and each of those counts one *nesting* level,
checked against ``Limits.max_depth`` on entry. A 10,000-deep formula therefore fails at
level 65 after a few hundred frames, long before Python's stack is in danger. The *height*
of every node built is tracked as well (a left-leaning chain is tall without nesting), and so
is the node count; the compiler and evaluator recurse over the tree, so its height bounds
their stack use too.

Precedence, loosest first (all binary operators are left-associative, as in Excel)::

    = <> < > <= >=      comparison
    &                   text concatenation
    + -                 addition, subtraction
    * /                 multiplication, division
    ^                   power: 2^3^2 is (2^3)^2 = 64
    %    (postfix)      percent: 50% is 0.5; binds tighter than ^ (2^50% is 2^0.5)
    - +  (prefix)       negation binds tighter than ^: -2^2 is 4, as in Excel
"""

from __future__ import annotations

import re
from typing import Final

from server.formula import ast
from server.formula.errors import FormulaDefinitionError, FormulaSyntaxError
from server.formula.limits import DEFAULT_LIMITS, Limits
from server.formula.tokenizer import Kind, Token, tokenize

_BINARY_POWER: Final[dict[str, int]] = {
    "=": 10,
    "<>": 10,
    "<": 10,
    ">": 10,
    "<=": 10,
    ">=": 10,
    "&": 20,
    "+": 30,
    "-": 30,
    "*": 40,
    "/": 40,
    "^": 50,
}
_PREFIX_POWER: Final = 60
_FUNCTION_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_PARAM_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def parse_formula(text: str, limits: Limits = DEFAULT_LIMITS) -> ast.Expr:
    """Parse a formula (an optional leading ``=`` is ignored) into a syntax tree.

    Raises :class:`FormulaSyntaxError` for text that is not a formula or exceeds the
    length, depth or node bounds of ``limits``.
    """
    tokens = tokenize(text, limits)
    start = 1 if tokens[0].kind is Kind.OP and tokens[0].text == "=" else 0
    parser = _Parser(tokens, start, limits)
    return parser.parse_all()


def parse_definition(
    text: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[str, tuple[str, ...], ast.Expr]:
    """Parse ``NAME(p1, p2) = body`` into (upper-case name, parameter names, body).

    Raises :class:`FormulaDefinitionError` for a malformed header and
    :class:`FormulaSyntaxError` for a malformed body.
    """
    tokens = tokenize(text, limits)
    i = 0

    def expect(kind: Kind, what: str) -> Token:
        nonlocal i
        tok = tokens[i]
        if tok.kind is not kind:
            raise FormulaDefinitionError(f"expected {what}, found {_describe(tok)}", tok.pos)
        i += 1
        return tok

    name_tok = expect(Kind.IDENT, "a function name like MARGIN(price, cost) = ...")
    name = name_tok.text
    if _FUNCTION_NAME_RE.fullmatch(name) is None or len(name) > limits.max_name_length:
        raise FormulaDefinitionError(
            f"function names start with a letter and use letters, digits, _ and ., "
            f"at most {limits.max_name_length} characters",
            name_tok.pos,
        )
    expect(Kind.LPAREN, "(")
    params: list[str] = []
    if tokens[i].kind is not Kind.RPAREN:
        while True:
            p = expect(Kind.IDENT, "a parameter name")
            if _PARAM_NAME_RE.fullmatch(p.text) is None or len(p.text) > limits.max_name_length:
                raise FormulaDefinitionError(
                    f"parameter names start with a letter and use letters, digits and _, "
                    f"at most {limits.max_name_length} characters",
                    p.pos,
                )
            if p.text.upper() in ("TRUE", "FALSE"):
                raise FormulaDefinitionError(f"{p.text} cannot be a parameter name", p.pos)
            if p.text.casefold() in (q.casefold() for q in params):
                raise FormulaDefinitionError(f"parameter {p.text} appears twice", p.pos)
            params.append(p.text)
            if len(params) > limits.max_params:
                raise FormulaDefinitionError(
                    f"a function takes at most {limits.max_params} parameters", p.pos
                )
            if tokens[i].kind is Kind.COMMA:
                i += 1
                continue
            break
    expect(Kind.RPAREN, ")")
    eq = tokens[i]
    if eq.kind is not Kind.OP or eq.text != "=":
        raise FormulaDefinitionError(
            f"expected = after the parameters, found {_describe(eq)}", eq.pos
        )
    body = _Parser(tokens, i + 1, limits).parse_all()
    return name.upper(), tuple(params), body


def _describe(tok: Token) -> str:
    if tok.kind is Kind.END:
        return "the end of the formula"
    return repr(tok.text) if tok.kind is not Kind.TEXT else "text"


class _Parser:
    """One parse of one token list. Not reused."""

    def __init__(self, tokens: list[Token], start: int, limits: Limits) -> None:
        self.tokens = tokens
        self.i = start
        self.limits = limits
        self.nesting = 0
        self.nodes = 0

    def parse_all(self) -> ast.Expr:
        if self.tokens[self.i].kind is Kind.END:
            raise FormulaSyntaxError("empty formula", self.tokens[self.i].pos)
        expr, _ = self.expr(0)
        tok = self.tokens[self.i]
        if tok.kind is not Kind.END:
            raise FormulaSyntaxError(f"unexpected {_describe(tok)}", tok.pos)
        return expr

    def node(self, height: int, pos: int) -> None:
        """Account for one new node of the given height."""
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise FormulaSyntaxError(
                f"formula is too big (more than {self.limits.max_nodes} parts)", pos
            )
        if height > self.limits.max_depth:
            raise FormulaSyntaxError(
                f"formula is nested too deeply (more than {self.limits.max_depth} levels)", pos
            )

    def expr(self, min_power: int) -> tuple[ast.Expr, int]:
        """An expression whose binary operators all bind at least ``min_power``."""
        self.nesting += 1
        if self.nesting > self.limits.max_depth:
            raise FormulaSyntaxError(
                f"formula is nested too deeply (more than {self.limits.max_depth} levels)",
                self.tokens[self.i].pos,
            )
        left, height = self.prefix()
        while True:
            tok = self.tokens[self.i]
            if tok.kind is not Kind.OP:
                break
            power = _BINARY_POWER.get(tok.text)
            if power is None or power < min_power:  # a stray % is reported by the caller
                break
            self.i += 1
            right, right_height = self.expr(power + 1)  # +1: left-associative
            left = ast.Binary(tok.text, left, right)
            height = 1 + max(height, right_height)
            self.node(height, tok.pos)
        self.nesting -= 1
        return left, height

    def prefix(self) -> tuple[ast.Expr, int]:
        """An operand: a primary or a prefix operation, with any postfix ``%`` after it."""
        node, height = self.primary()
        while (tok := self.tokens[self.i]).kind is Kind.OP and tok.text == "%":
            self.i += 1
            height += 1
            self.node(height, tok.pos)
            node = ast.Unary("%", node)
        return node, height

    def primary(self) -> tuple[ast.Expr, int]:
        """A literal, reference, call, parenthesised expression or prefix operation."""
        tok = self.tokens[self.i]
        self.i += 1
        kind = tok.kind
        if kind is Kind.NUMBER:
            node: ast.Expr = ast.Number(_number(tok.text))
        elif kind is Kind.TEXT:
            node = ast.Text(tok.text)
        elif kind is Kind.ERROR:
            node = ast.Error(tok.text)
        elif kind is Kind.COLUMN:
            node = ast.ColumnRef(tok.text)
        elif kind is Kind.IDENT:
            if self.tokens[self.i].kind is Kind.LPAREN:
                return self.call(tok)
            upper = tok.text.upper()
            node = ast.Bool(upper == "TRUE") if upper in ("TRUE", "FALSE") else ast.Name(tok.text)
        elif kind is Kind.LPAREN:
            inner, height = self.expr(0)
            self.expect_rparen(tok)
            return inner, height
        elif kind is Kind.OP and tok.text in ("-", "+"):
            operand, height = self.expr(_PREFIX_POWER)
            self.node(height + 1, tok.pos)
            return ast.Unary(tok.text, operand), height + 1
        else:
            raise FormulaSyntaxError(f"unexpected {_describe(tok)}", tok.pos)
        self.node(1, tok.pos)
        return node, 1

    def call(self, name: Token) -> tuple[ast.Expr, int]:
        open_paren = self.tokens[self.i]
        self.i += 1
        args: list[ast.Expr] = []
        height = 0
        if self.tokens[self.i].kind is not Kind.RPAREN:
            while True:
                arg, arg_height = self.expr(0)
                args.append(arg)
                height = max(height, arg_height)
                if self.tokens[self.i].kind is Kind.COMMA:
                    self.i += 1
                    continue
                break
        self.expect_rparen(open_paren)
        self.node(height + 1, name.pos)
        return ast.Call(name.text, tuple(args)), height + 1

    def expect_rparen(self, opener: Token) -> None:
        tok = self.tokens[self.i]
        if tok.kind is not Kind.RPAREN:
            raise FormulaSyntaxError(
                f"expected ) to close the ( at character {opener.pos + 1}, found {_describe(tok)}",
                tok.pos,
            )
        self.i += 1


def _number(text: str) -> int | float:
    # Short digit strings stay exact ints; long ones go through float (which may give inf,
    # later #LIMIT!) so int() never parses thousands of digits.
    if len(text) <= 18 and not any(c in text for c in ".eE"):
        return int(text)
    return float(text)
