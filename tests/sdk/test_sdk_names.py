"""Column ids the SDK makes from names are valid for any name and never collide (pure)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from client_sdk import column_id_for
from protocol.limits import ID_PATTERN, NAME_PATTERN

VALID = re.compile(ID_PATTERN)


def test_plain_names_keep_their_text() -> None:
    assert column_id_for("Age") == "Age"
    assert column_id_for("first_name") == "first_name"


def test_unicode_and_punctuation_give_valid_distinct_ids() -> None:
    names = [
        "名前",
        "Имя",
        "a.b",
        "a b",
        "a-b",
        "a_b",
        "a/b",
        "ä",
        "a",
        "_id",
        " ",
        "👍",
        "x" * 128,
    ]
    ids = [column_id_for(n) for n in names]
    assert all(VALID.match(i) for i in ids), ids
    assert len(set(ids)) == len(names)
    assert not any(i.startswith("_") for i in ids)


def test_an_id_already_taken_is_never_reused() -> None:
    taken = {"Age", column_id_for("名前")}
    made = column_id_for("Age", taken)
    assert made != "Age" and VALID.match(made)
    assert column_id_for("名前", taken) not in taken


@given(st.lists(st.from_regex(NAME_PATTERN, fullmatch=True), min_size=1, max_size=20, unique=True))
def test_any_set_of_names_gets_valid_unique_ids(names: list[str]) -> None:
    taken: set[str] = set()
    for name in names:
        cid = column_id_for(name, taken)
        assert VALID.match(cid)
        assert cid not in taken
        taken.add(cid)
