"""How a secret value is shown in listings: at most its last 4 characters, never its length.

``mask("sk-proj-abcdefghijklmnop1234") == "…1234"``; values shorter than
:data:`MIN_LEN_TO_HINT` characters show nothing but ``"••••"``, because four characters of
a short value are a large share of it (a 6-digit PIN would be two-thirds revealed). The
output has a fixed shape, so it does not leak the value's length either.
"""

from __future__ import annotations

HINT_CHARS = 4
"""Characters of the tail shown for long values."""

MIN_LEN_TO_HINT = 16
"""Values shorter than this show no characters at all."""

HIDDEN = "••••"


def mask(value: str) -> str:
    """A display form of ``value`` revealing no more than its last 4 characters."""
    if len(value) < MIN_LEN_TO_HINT:
        return HIDDEN
    tail = value[-HINT_CHARS:]
    if not tail.isprintable() or tail != tail.strip():
        # Whitespace or control characters would render confusingly (or not at all).
        return HIDDEN
    return "…" + tail
