"""The audit package sits below the control plane, the stores and the hub (issue 11).

``server/audit`` is the tamper-evident log on a caller's SQLite connection; whoever writes
to it (the control plane, the tenant stores, the hub) imports it, never the reverse, so
the packages form no cycle. Read from the source with ``ast``: type-only imports count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of ``server/<package>`` imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in sorted((SERVER / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(SERVER.parent))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("audit", ("server.control", "server.hub", "server.store", "server.app")),
        ("control", ("server.hub", "server.app")),
        ("auth", ("server.control", "server.audit", "server.hub", "server.app")),
    ],
)
def test_package_imports_nothing_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        path: sorted(n for n in names if n.startswith(forbidden))
        for path, names in imported_modules(package).items()
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_check_sees_imports() -> None:
    # The control plane does write through the audit package: the reader must see that.
    control = imported_modules("control")
    assert "server.audit.events" in control["server/control/keys.py"]
