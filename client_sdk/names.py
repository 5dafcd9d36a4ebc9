"""Column ids made from column names: always valid on the wire, never colliding (pure).

Ids are 1-64 characters of ``A-Z a-z 0-9 _ -`` (``protocol.limits.ID_PATTERN``); names are
any printable text. :func:`column_id_for` keeps a name that already is a valid id as it is
(``Age`` -> ``Age``), so ids stay readable. Any other name (``First name``, ``名前``,
``a.b``) becomes its ASCII letters and digits plus a short digest of the exact name, so two
names that differ only in punctuation, case of non-ASCII letters or script still get two
ids (``a.b`` -> ``a_b_1c3f9e20``, ``a-b`` stays ``a-b``). Ids never start with ``_``:
``_id`` names the row id in queries.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection

from protocol.limits import MAX_ID_CHARS

_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_DIGEST_CHARS = 8


def _digest(name: str, salt: int = 0) -> str:
    data = name.encode("utf-8") + (b"\x00%d" % salt if salt else b"")
    return hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]


def column_id_for(name: str, taken: Collection[str] = ()) -> str:
    """A valid column id for ``name``, distinct from every id in ``taken``."""
    if _VALID.match(name) and name not in taken:
        return name
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _UNSAFE.sub("_", ascii_text).strip("_")[: MAX_ID_CHARS - _DIGEST_CHARS - 2]
    stem = f"{slug}_" if slug else "c_"
    salt = 0
    while True:
        candidate = stem + _digest(name, salt)
        if candidate not in taken:
            return candidate
        salt += 1
