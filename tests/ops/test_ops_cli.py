"""CLI refusals and conveniences: a mistyped data dir, deletes nobody confirmed, empty
secrets, ``--version``, ``tenant plan``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from ops_helpers import hypertab

from server.cli import version


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with master keys, holding one tenant, ``acme``."""
    directory = tmp_path / "data"
    assert hypertab("keyring", "generate", "--data-dir", str(directory)).returncode == 0
    created = hypertab("tenant", "create", "acme", "--data-dir", str(directory))
    assert created.returncode == 0, created.stderr
    return directory


@pytest.mark.parametrize(
    "command",
    [
        ["tenant", "list"],
        ["secret", "list", "--tenant", "acme"],
        ["tenant", "delete", "acme", "--yes"],
    ],
)
def test_a_directory_that_is_not_a_data_dir_is_refused_and_left_alone(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "dta"
    result = hypertab(*command, "--data-dir", str(typo))
    assert result.returncode == 2
    assert f"no Hypertab data directory at {typo}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not typo.exists()  # no control.db, no pepper.key, no directory


def test_delete_asks_and_refuses_when_no_terminal_answers(data: Path) -> None:
    refused = hypertab("tenant", "delete", "acme", "--data-dir", str(data))
    assert refused.returncode == 2
    assert "no terminal to ask; pass --yes" in refused.stderr
    listed = json.loads(hypertab("tenant", "list", "--json", "--data-dir", str(data)).stdout)
    assert [t["name"] for t in listed["tenants"]] == ["acme"]  # still there
    deleted = hypertab("tenant", "delete", "acme", "--yes", "--json", "--data-dir", str(data))
    assert deleted.returncode == 0, deleted.stderr
    listed = json.loads(hypertab("tenant", "list", "--json", "--data-dir", str(data)).stdout)
    assert listed["tenants"] == []


def test_an_empty_secret_is_refused(data: Path) -> None:
    for stdin in ("", "\n", "  \n"):
        result = hypertab(
            "secret", "set", "--tenant", "acme", "FOO", "--data-dir", str(data), stdin=stdin
        )
        assert result.returncode == 2
        assert "refusing an empty secret value" in result.stderr
    listed = hypertab("secret", "list", "--tenant", "acme", "--json", "--data-dir", str(data))
    assert json.loads(listed.stdout) == {"secrets": []}


def test_version() -> None:
    result = hypertab("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hypertab {version()}" != "hypertab unknown"


def test_tenant_plan_changes_the_plan_and_is_audited(data: Path) -> None:
    changed = hypertab("tenant", "plan", "acme", "team", "--json", "--data-dir", str(data))
    assert changed.returncode == 0, changed.stderr
    out = json.loads(changed.stdout)
    assert out["tenant"]["plan"] == "team" and out["previous_plan"] == "free"
    bad = hypertab("tenant", "plan", "acme", "gold", "--data-dir", str(data))
    assert bad.returncode == 2
    verified = hypertab("audit", "verify", "--control", "--json", "--data-dir", str(data))
    assert json.loads(verified.stdout)["ok"] is True
    with sqlite3.connect(data / "control.db") as db:
        rows = db.execute(
            "SELECT actor, details FROM _ht_audit_log WHERE action = 'tenant.plan_changed'"
        ).fetchall()
    assert len(rows) == 1 and rows[0][0].startswith("cli:")
    assert json.loads(rows[0][1]) == {"from": "free", "to": "team"}
