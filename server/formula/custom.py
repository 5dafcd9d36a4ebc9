"""Custom functions: a tenant's own functions, written in the formula language.

A definition reads ``NAME(param, ...) = body``, e.g. ``MARGIN(price, cost) = (price - cost) /
price``. Rules, checked by :meth:`FunctionRegistry.define`:

* the name starts with a letter and uses letters, digits, ``_`` and ``.``; it is
  case-insensitive (stored upper case) and cannot be a built-in's name;
* parameters are distinct identifiers (case-insensitive), at most ``Limits.max_params``;
* the body uses its parameters as bare names and may call built-ins and custom functions,
  including itself (recursion); it cannot read columns (``{Name}`` is refused), so custom
  functions never add table dependencies and cannot hide a reference cycle;
* the body obeys the same length, depth and node bounds as a formula.

Calls resolve by name at evaluation time, so functions may be defined in any order and
redefined without recompiling formulas; calling an undefined function gives ``#NAME?`` and a
wrong argument count ``#VALUE!``. Every call is charged its body's node count in steps and
is bounded by ``Limits.max_call_depth`` and ``max_eval_depth``: unbounded or exponential
recursion ends with ``#LIMIT!``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from server.formula import ast
from server.formula.compiler import compile_body
from server.formula.context import CompiledFunction
from server.formula.errors import FormulaDefinitionError
from server.formula.functions import BUILTINS
from server.formula.limits import DEFAULT_LIMITS, Limits
from server.formula.parser import parse_definition


@dataclass(frozen=True, slots=True)
class CustomFunction:
    """One defined custom function."""

    name: str
    params: tuple[str, ...]
    source: str
    body: ast.Expr
    calls: frozenset[str]  # names of non-built-in functions its body calls
    volatile: bool  # its body calls NOW() or TODAY() directly
    compiled: CompiledFunction


class FunctionRegistry:
    """A tenant's custom functions. Pass it as ``EvalContext(functions=...)``."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._functions: dict[str, CustomFunction] = {}

    @classmethod
    def from_definitions(
        cls, definitions: Iterable[str], limits: Limits = DEFAULT_LIMITS
    ) -> FunctionRegistry:
        """A registry holding every definition (e.g. as stored); raises like :meth:`define`."""
        registry = cls(limits)
        for text in definitions:
            registry.define(text)
        return registry

    def define(self, definition: str) -> CustomFunction:
        """Add or replace the function ``definition`` defines; return it.

        Raises :class:`FormulaDefinitionError` (or its parent ``FormulaSyntaxError`` for a
        malformed body) and leaves the registry unchanged on any error.
        """
        name, params, body = parse_definition(definition, self.limits)
        if name in BUILTINS or name in ("TRUE", "FALSE"):
            raise FormulaDefinitionError(f"{name} is a built-in function")
        if name not in self._functions and len(self._functions) >= self.limits.max_functions:
            raise FormulaDefinitionError(
                f"at most {self.limits.max_functions} custom functions can be defined"
            )
        compiled, calls, volatile = compile_body(body, name, params, self.limits)
        function = CustomFunction(name, params, definition, body, calls, volatile, compiled)
        self._functions[name] = function
        return function

    def remove(self, name: str) -> bool:
        """Forget function ``name``; whether it existed. Formulas calling it give ``#NAME?``."""
        return self._functions.pop(name.upper(), None) is not None

    def get(self, name: str) -> CustomFunction | None:
        """The function called ``name`` (any case), or ``None``."""
        return self._functions.get(name.upper())

    def lookup(self, name: str) -> CompiledFunction | None:
        """For the evaluator: the compiled function called ``name`` (upper case)."""
        function = self._functions.get(name)
        return function.compiled if function is not None else None

    def definitions(self) -> dict[str, str]:
        """Definition texts by name, to store and later pass to :meth:`from_definitions`."""
        return {name: f.source for name, f in self._functions.items()}

    def reachable(self, names: Iterable[str]) -> frozenset[str]:
        """``names`` and every custom function they call, transitively (defined ones only).

        A formula whose ``custom_calls`` reach a redefined function needs recomputing; one
        that reaches a volatile function is volatile.
        """
        seen: set[str] = set()
        stack = [n.upper() for n in names]
        while stack:
            name = stack.pop()
            function = self._functions.get(name)
            if function is None or name in seen:
                continue
            seen.add(name)
            stack.extend(function.calls)
        return frozenset(seen)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.upper() in self._functions

    def __iter__(self) -> Iterator[CustomFunction]:
        return iter(list(self._functions.values()))

    def __len__(self) -> int:
        return len(self._functions)
