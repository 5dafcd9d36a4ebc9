"""Hard limits of the wire, enforced at decode time so invalid input never reaches logic.

Both peers import these; the server announces the ones a client must respect in ``welcome``.
"""

from __future__ import annotations

MAX_FRAME_BYTES = 1 << 20
"""Largest WebSocket message either side accepts (1 MiB); larger frames close with 1009."""

MAX_SERVER_FRAME_BYTES = 16 << 20
"""Largest message a client accepts from the server (16 MiB). The server keeps frames under
``MAX_FRAME_BYTES`` by splitting lists of changes and rows, but one change (a batch plus the
formula values it recomputed) always travels whole and may be larger."""

MAX_OPS_PER_BATCH = 1000
"""Most ops one ``apply`` may carry."""

MAX_ROWS_PER_OP = 1000
"""Most rows one ``insert_rows`` or ``delete_rows`` op may carry."""

MAX_COLUMNS = 256
"""Most columns a table may have (checked by the op engine)."""

MAX_CELL_CHARS = 65_536
"""Longest text cell, in characters; json cells are bounded by their encoded size."""

MAX_JSON_CELL_BYTES = 65_536
"""Largest json cell, as encoded JSON bytes."""

MAX_JSON_BATCH_BYTES = 2 << 20
"""Most encoded JSON bytes the json cells of one batch may total (2 MiB): twice a frame, so
only a frame whose cells expand on encoding (msgpack ``false`` is 1 byte, JSON 6) reaches
it. It bounds the work of checking one batch's json cells."""

MAX_JSON_DEPTH = 32
"""Deepest nesting of a json cell."""

MAX_NAME_CHARS = 128
"""Longest table or column name."""

MAX_FORMULA_CHARS = 4096
"""Longest formula text."""

MAX_ID_CHARS = 64
"""Longest id (table, column, row, client, op)."""

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Ids are short url-safe strings: chosen by clients, never used in SQL text."""

NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"
"""Names are any printable text (quotes and SQL included: names never reach SQL text)."""

MAX_SAFE_INTEGER = 2**53
"""Integers beyond +-2**53 are refused: JSON peers (browsers) cannot represent them."""

MAX_ABS_NUMBER = 1e300
"""Floats must be finite and within this magnitude (NaN and infinities are refused)."""

SNAPSHOT_CHUNK_ROWS = 2000
"""Rows per snapshot chunk."""

MAX_QUERY_LIMIT = 5000
"""Most rows one ``query`` page returns."""

MAX_PRESENCE_KEYS = 32
"""Most keys in one presence state."""

MAX_FILTER_NODES = 64
"""Most nodes (``and``/``or``/``not`` and leaf conditions) in one query filter."""

MAX_FILTER_DEPTH = 8
"""Deepest nesting of a query filter (a lone condition has depth 1)."""

MAX_FILTER_VALUES = 1000
"""Most values one query filter carries, ``in`` lists included (each ``in`` list is also
bounded by this)."""

MAX_MATCH_CHARS = 256
"""Longest ``contains`` / ``starts_with`` text."""

MAX_ORDER_BY = 8
"""Most sort columns in one query."""

MAX_CURSOR_CHARS = 300_000
"""Longest query cursor (it holds the sort key of a page's last row)."""
