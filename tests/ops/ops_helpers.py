"""Run the real ``hypertab`` console script (the one next to this interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
HYPERTAB = BIN / "hypertab"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``HYPERTAB_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env.update(extra)
    return env


def hypertab(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``hypertab *args``, stdin not a terminal (empty unless given); never raises on exit."""
    return subprocess.run(
        [str(HYPERTAB), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=60,
        check=False,
    )
