"""The delivery test helpers (a real HTTP receiver, a real server process) are shared."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "delivery"))
