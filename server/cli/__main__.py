"""``python -m server.cli``: the same as the ``hypertab`` console script."""

from __future__ import annotations

import sys

from server.cli import main

sys.exit(main())
