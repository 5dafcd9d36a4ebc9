"""Custom functions: definition rules, calls, recursion bounds."""

from __future__ import annotations

import pytest

from server.formula import (
    DIV0,
    LIMIT,
    NAME,
    VALUE,
    CellValue,
    EvalContext,
    FormulaDefinitionError,
    FormulaSyntaxError,
    FunctionRegistry,
    Limits,
    compile_formula,
)


def ev(registry: FunctionRegistry, text: str, row: dict[str, CellValue] | None = None) -> CellValue:
    return compile_formula(text, limits=registry.limits).evaluate(
        row or {}, EvalContext(functions=registry)
    )


def test_define_and_call() -> None:
    reg = FunctionRegistry()
    fn = reg.define("MARGIN(price, cost) = (price - cost) / price")
    assert fn.name == "MARGIN"
    assert fn.params == ("price", "cost")
    assert ev(reg, "margin({p}, {c})", {"p": 10, "c": 7.5}) == 0.25
    assert ev(reg, "MARGIN(0, 1)") == DIV0
    assert "Margin" in reg
    assert len(reg) == 1
    assert reg.definitions() == {"MARGIN": "MARGIN(price, cost) = (price - cost) / price"}


def test_functions_call_each_other_defined_in_any_order() -> None:
    reg = FunctionRegistry.from_definitions(
        ["GROSS(p, q) = p * q * (1 + TAX())", "TAX() = 0.25", "Twice(X) = x * 2"]
    )
    assert ev(reg, "GROSS(10, 2)") == 25
    assert ev(reg, "TWICE(GROSS(1, 1))") == 2.5
    assert reg.reachable(["GROSS"]) == {"GROSS", "TAX"}


def test_redefine_and_remove_take_effect_without_recompiling() -> None:
    reg = FunctionRegistry()
    reg.define("K() = 1")
    f = compile_formula("K() + 1")
    ctx = EvalContext(functions=reg)
    assert f.evaluate({}, ctx) == 2
    reg.define("K() = 10")
    assert f.evaluate({}, ctx) == 11
    assert reg.remove("k")
    assert f.evaluate({}, ctx) == NAME
    assert not reg.remove("k")


def test_wrong_arity_and_unknown() -> None:
    reg = FunctionRegistry.from_definitions(["ONE(x) = x"])
    assert ev(reg, "ONE(1, 2)") == VALUE
    assert ev(reg, "TWO(1)") == NAME
    assert compile_formula("ONE(1)").evaluate({}) == NAME  # no registry in the context


def test_error_arguments_propagate_only_when_used() -> None:
    reg = FunctionRegistry.from_definitions(["FIRST(a, b) = a", "SAFE(x) = IF(ISERROR(x), 0, x)"])
    assert ev(reg, "FIRST(1, 1/0)") == 1
    assert ev(reg, "FIRST(1/0, 1)") == DIV0
    assert ev(reg, "SAFE(1/0)") == 0


def test_recursion_works_within_bounds() -> None:
    reg = FunctionRegistry.from_definitions(
        [
            "FACT(n) = IF(n <= 1, 1, n * FACT(n - 1))",
            "IS.EVEN(n) = IF(n = 0, TRUE, IS.ODD(n - 1))",
            "IS.ODD(n) = IF(n = 0, FALSE, IS.EVEN(n - 1))",
        ]
    )
    assert ev(reg, "FACT(10)") == 3628800
    assert ev(reg, "IS.EVEN(10)") is True
    assert ev(reg, "IS.ODD(7)") is True


def test_self_and_mutual_recursion_without_end_is_limit() -> None:
    reg = FunctionRegistry.from_definitions(
        [
            "LOOP(n) = LOOP(n + 1)",
            "PING(n) = PONG(n)",
            "PONG(n) = PING(n)",
            "DEEP(n) = IF(n = 0, 0, DEEP(n - 1))",
        ]
    )
    assert ev(reg, "LOOP(0)") == LIMIT
    assert ev(reg, "PING(0)") == LIMIT
    assert ev(reg, "DEEP(20)") == 0
    assert ev(reg, "DEEP(100000)") == LIMIT


def test_budget_exhaustion_cannot_be_caught_by_iferror() -> None:
    reg = FunctionRegistry.from_definitions(["LOOP(n) = LOOP(n + 1)"])
    assert ev(reg, 'IFERROR(LOOP(0), "caught")') == LIMIT
    assert ev(reg, "ISERROR(LOOP(0))") == LIMIT


def test_step_budget_bounds_exponential_fanout() -> None:
    reg = FunctionRegistry.from_definitions(["FIB(n) = IF(n < 2, n, FIB(n - 1) + FIB(n - 2))"])
    assert ev(reg, "FIB(10)") == 55
    assert ev(reg, "FIB(30)") == LIMIT  # 2.7 million calls: stopped by max_steps
    small = FunctionRegistry(Limits(max_steps=50))
    small.define("FIB(n) = IF(n < 2, n, FIB(n - 1) + FIB(n - 2))")
    assert ev(small, "FIB(10)") == LIMIT


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        ("SUM(a) = a", FormulaDefinitionError),  # a built-in's name
        ("TRUE() = 1", FormulaDefinitionError),
        ("_HIDDEN(a) = a", FormulaSyntaxError),  # names start with a letter
        ("F(a, A) = a", FormulaDefinitionError),  # duplicate parameter
        ("F(true) = 1", FormulaDefinitionError),
        ("F(a.b) = 1", FormulaDefinitionError),
        ("F(a) = {Price} * a", FormulaDefinitionError),  # bodies cannot read columns
        ("F(a) = SUM({Price})", FormulaDefinitionError),
        ("F(a) a", FormulaDefinitionError),
        ("F(a) =", FormulaSyntaxError),
        ("F a = 1", FormulaDefinitionError),
        ("= 1", FormulaDefinitionError),
        ("F(a) = ROUND()", FormulaSyntaxError),
        ("F(" + ", ".join(f"p{i}" for i in range(17)) + ") = 1", FormulaDefinitionError),
        ("F" * 65 + "() = 1", FormulaDefinitionError),
    ],
)
def test_definition_rules(definition: str, error: type[Exception]) -> None:
    reg = FunctionRegistry()
    with pytest.raises(error):
        reg.define(definition)
    assert len(reg) == 0


def test_registry_size_is_bounded() -> None:
    reg = FunctionRegistry(Limits(max_functions=2))
    reg.define("A() = 1")
    reg.define("B() = 2")
    reg.define("A() = 3")  # redefining does not count twice
    with pytest.raises(FormulaDefinitionError):
        reg.define("C() = 3")


def test_parameters_shadow_nothing_outside_the_body() -> None:
    reg = FunctionRegistry.from_definitions(["ADD1(sum) = sum + 1"])
    assert ev(reg, "ADD1(SUM(1, 2))") == 4
    assert compile_formula("sum + 1").evaluate({}) == NAME
