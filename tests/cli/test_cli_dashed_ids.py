"""Ids starting with ``-`` (table ids are client-chosen) work as option values and
positionals; when argparse must still take a value for an option, the error says to write
``--option=VALUE``.

Before: ``--table -x7Qa`` failed with "argument --table: expected one argument" and no
hint; only ``--table=-x7Qa`` worked.
"""

from __future__ import annotations

import json

import pytest
from cli_helpers import Run

from server.cli import build_parser


def parse(*words: str) -> object:
    return build_parser(words[0]).parse_args(list(words))


def test_a_dashed_id_is_a_value() -> None:
    args = parse("key", "create", "--tenant", "t", "--name", "n", "--table", "-x7Qa",
                 "--table", "-_b", "--json")  # fmt: skip
    assert args.table == ["-x7Qa", "-_b"] and args.json  # type: ignore[attr-defined]
    args = parse("webhook", "add", "--tenant", "t", "--url", "u", "--table", "-9")
    assert args.table == "-9"  # type: ignore[attr-defined]  # not a negative number: an id
    assert parse("key", "revoke", "-k3y").key_id == "-k3y"  # type: ignore[attr-defined]
    # Options are still options: abbreviations, and anything starting with "--".
    assert parse("key", "create", "--tenant", "t", "--name", "n", "--tab", "x").table == ["x"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "words",
    [
        ("key", "create", "--tenant", "t", "--name", "n", "--table", "--json"),
        ("key", "create", "--tenant", "t", "--name", "n", "--table", "-hx"),  # -h, then "x"
        ("webhook", "add", "--tenant", "t", "--url", "u", "--table", "--x"),
    ],
)
def test_when_a_value_is_taken_for_an_option_the_error_shows_the_form_that_works(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*words)
    assert info.value.code == 2
    assert "--table=VALUE" in capsys.readouterr().err


def test_the_real_command_takes_a_dashed_table_id(hypertab: Run) -> None:
    assert hypertab("keyring", "generate").returncode == 0
    assert hypertab("tenant", "create", "acme", "--json").returncode == 0
    created = hypertab("key", "create", "--tenant", "acme", "--name", "bot", "--table",
                       "-x7Qa", "--json")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["key"]["tables"] == ["-x7Qa"]
    refused = hypertab("key", "create", "--tenant", "acme", "--name", "b2", "--table", "-hx")
    assert refused.returncode == 2 and "--table=VALUE" in refused.stderr
    works = hypertab("key", "create", "--tenant", "acme", "--name", "b2", "--table=-hx", "--json")
    assert works.returncode == 0 and json.loads(works.stdout)["key"]["tables"] == ["-hx"]
