"""A hub whose start fails partway exits at once, non-zero, with one clear line.

Before, a failure after the control plane had opened (here: a control.db whose webhook
index is not the table this version expects) printed its error and then hung: the
aiosqlite connections opened so far are threads, and nothing closed them.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
from scaleout_process import create_tenant, env_for, hypertab_argv

EXIT_WITHIN = 60  # seconds; the hang this guards against never ends


def _broken_data_dir(tmp_path: Path) -> Path:
    """A data dir whose control.db opens, but the webhook dispatcher's start fails."""
    data = tmp_path / "data"
    create_tenant(data, "acme")
    with sqlite3.connect(data / "control.db") as db:
        db.execute("DROP TABLE IF EXISTS _ht_webhook_tenants")
        db.execute("CREATE VIEW _ht_webhook_tenants AS SELECT 1 AS other")
    return data


def _serve(data: Path, *flags: str, redis_url: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*hypertab_argv(), "serve", "--data-dir", str(data), "--log-level", "ERROR", *flags],
        capture_output=True,
        text=True,
        env=env_for(redis_url),
        timeout=EXIT_WITHIN,
    )


def test_a_start_failing_after_the_control_plane_opened_exits_with_the_error(
    tmp_path: Path,
) -> None:
    done = _serve(_broken_data_dir(tmp_path), "--port", "0")
    assert done.returncode == 1
    assert "hypertab: error: could not start" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_cannot_start_stops_the_supervisor_with_its_error(
    tmp_path: Path, redis_url: str
) -> None:
    done = _serve(_broken_data_dir(tmp_path), "--port", "0", "--workers", "2",
                  redis_url=redis_url)  # fmt: skip
    assert done.returncode == 1
    assert "could not start" in done.stderr  # the worker's own line
    assert "before it was listening" in done.stderr  # the supervisor's
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_with_the_address(
    tmp_path: Path, redis_url: str, workers: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = _serve(tmp_path / "data", "--port", port, "--workers", workers,
                      redis_url=redis_url)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_more_than_one_worker_without_redis_is_refused(tmp_path: Path) -> None:
    done = _serve(tmp_path / "data", "--port", "0", "--workers", "2")
    assert done.returncode == 1
    assert "--workers 2 needs Redis" in done.stderr and "HYPERTAB_REDIS_URL" in done.stderr
