"""The dependency graph: recompute order, cycle detection, recompute plans."""

from __future__ import annotations

import pytest

from server.formula import (
    ColumnRefs,
    FormulaCycleError,
    check_no_cycle,
    compile_formula,
    find_cycle,
    plan_change,
    recompute_order,
)


def refs(row: str = "", whole: str = "") -> ColumnRefs[str]:
    return ColumnRefs(frozenset(row.split()), frozenset(whole.split()))


def test_order_puts_dependencies_first() -> None:
    graph = {"total": refs("net tax"), "tax": refs("net"), "net": refs("price qty")}
    result = recompute_order(graph)
    assert result.order == ("net", "tax", "total")
    assert result.cyclic == frozenset()


def test_cyclic_columns_are_reported_not_ordered() -> None:
    graph = {"a": refs("b"), "b": refs("a"), "c": refs("a"), "d": refs("x")}
    result = recompute_order(graph)
    assert result.order == ("d",)
    assert result.cyclic == {"a", "b", "c"}


def test_self_reference_is_a_cycle() -> None:
    f = compile_formula("{total} + 1")
    assert find_cycle({}, "total", f.dependencies) == ("total", "total")
    g = compile_formula("{x} / SUM({total})")
    with pytest.raises(FormulaCycleError) as info:
        check_no_cycle({}, "total", g.dependencies)
    assert info.value.cycle == ("total", "total")


def test_indirect_cycle_is_found_with_its_path() -> None:
    graph = {"b": refs("c"), "c": refs(whole="a")}
    assert find_cycle(graph, "a", refs("b")) == ("a", "b", "c", "a")
    with pytest.raises(FormulaCycleError, match="a -> b -> c -> a"):
        check_no_cycle(graph, "a", refs("b"))


def test_replacing_a_formula_ignores_its_old_references() -> None:
    graph = {"a": refs("b"), "b": refs("x")}
    # a's old formula read b; b reading a would be a cycle...
    assert find_cycle(graph, "b", refs("a")) == ("b", "a", "b")
    # ...but a itself may change to anything not leading back to a.
    assert find_cycle(graph, "a", refs("x")) is None


def test_custom_functions_cannot_add_dependencies() -> None:
    f = compile_formula("MYFN({a}, 2)")
    assert f.dependencies == refs("a")


def test_plan_separates_same_row_from_all_rows() -> None:
    graph = {
        "line": refs("price qty"),  # per row
        "share": refs("line", whole="line"),  # line / SUM(line)
        "label": refs("share"),
        "other": refs("name"),
    }
    plan = plan_change(graph, {"qty"})
    assert plan.same_row == ("line",)
    assert plan.all_rows == ("share", "label")
    plan = plan_change(graph, {"name"})
    assert plan.same_row == ("other",)
    assert plan.all_rows == ()


def test_long_chains_do_not_recurse() -> None:
    graph = {f"c{i}": refs(f"c{i - 1}") for i in range(1, 20_000)}
    result = recompute_order(graph)
    assert result.order[0] == "c1" and result.order[-1] == "c19999"
    assert find_cycle(graph, "c0", refs("c19999")) is not None
    assert len(plan_change(graph, {"c0"}).same_row) == 19_999
