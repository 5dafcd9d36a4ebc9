"""Helpers for running the real ``hypertab`` command in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

KEY_RE = re.compile(r"ht_(?:live|test)_[a-z0-9]{16}_[0-9A-Za-z]{49}")


def hypertab_command() -> list[str]:
    """The installed console script when present, else ``python -m server.cli``."""
    script = Path(sys.executable).parent / "hypertab"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "server.cli"]


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any ``HYPERTAB_*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env.update(extra)
    return env


Run = Callable[..., subprocess.CompletedProcess[str]]
