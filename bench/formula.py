"""Formula engine throughput: recompute a formula column over 100,000 rows.

Prints one JSON line: cell evaluations per second for a simple formula (``{a} * {b} + 1``),
a heavy one (IF / text / ROUND / TEXT nesting), an aggregate one (``{a} / SUM({a})``) and
one calling a custom function, plus the one-off compile time. Run:
``.venv/bin/python bench/formula.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

from server.formula import CellValue, EvalContext, Formula, FunctionRegistry, compile_formula

SIMPLE = "{a} * {b} + 1"
HEAVY = (
    'IF({a} > 50, UPPER(LEFT({name}, 3)) & "-" & TEXT(ROUND({a} * {b} / 7, 2), "0.00"), '
    'IF(ISBLANK({b}), "none", LOWER(TRIM({name})) & ROUND({b} / 3, 1)))'
)
AGGREGATE = "{a} / SUM({a})"
CUSTOM = "MARGIN({a} + 1, {b})"


def best_rate(run: Callable[[], object], rows: int, repeat: int = 3) -> float:
    """Evaluations per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return rows / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(42)
    ids = {"a": "c_a", "b": "c_b", "name": "c_name"}
    table: list[dict[str, CellValue]] = [
        {
            "c_a": rng.randint(0, 100),
            "c_b": None if rng.random() < 0.05 else round(rng.uniform(0, 1000), 2),
            "c_name": rng.choice(["  Ada Lovelace ", "Grace  Hopper", "alan turing"]),
        }
        for _ in range(args.rows)
    ]
    columns = {cid: [row[cid] for row in table] for cid in ids.values()}
    functions = FunctionRegistry.from_definitions(["MARGIN(price, cost) = (price - cost) / price"])

    start = time.perf_counter()
    formulas = {
        name: compile_formula(text, columns=ids)
        for name, text in [
            ("simple", SIMPLE),
            ("heavy", HEAVY),
            ("aggregate", AGGREGATE),
            ("custom", CUSTOM),
        ]
    }
    compile_us = (time.perf_counter() - start) / len(formulas) * 1e6

    figures: dict[str, object] = {"bench": "formula", "rows": args.rows}
    for name, formula in formulas.items():

        def run(formula: Formula = formula) -> object:
            # A fresh context per pass, as the table layer would make per recompute.
            ctx = EvalContext(columns=columns, functions=functions)
            return formula.evaluate_rows(table, ctx)

        figures[f"{name}_evals_per_s"] = round(best_rate(run, args.rows))
    figures["compile_us_per_formula"] = round(compile_us, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
