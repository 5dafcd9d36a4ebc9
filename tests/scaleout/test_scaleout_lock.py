"""A second hub on a data dir in use: refused without Redis, allowed when all share Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from scaleout_process import Hub


def _refusal(hub: Hub) -> str:
    """Run ``hub`` expecting it to refuse to start; returns its stderr."""
    proc = hub.spawn()
    proc.wait(timeout=60)
    assert proc.returncode != 0
    return hub.stderr()


def test_second_hub_is_refused_until_the_first_dies(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    first = Hub(data).start()
    try:
        err = _refusal(Hub(data))
        assert str(data) in err
        assert "HYPERTAB_REDIS_URL" in err and "in use" in err
        assert "Traceback" not in err
        err = _refusal(Hub(data, redis_url))  # Redis does not help: the first would not hear
        assert str(data) in err and "without HYPERTAB_REDIS_URL" in err
        first.kill()  # kill -9: the kernel drops the lock with the process
        second = Hub(data).start()
        second.stop()
        assert second.proc is not None and second.proc.returncode == 0
    finally:
        first.kill()


def test_hubs_sharing_redis_start_together_and_refuse_one_without(
    tmp_path: Path, redis_url: str
) -> None:
    data = tmp_path / "data"
    hubs = [Hub(data, redis_url).start(), Hub(data, redis_url).start()]
    try:
        err = _refusal(Hub(data))  # no Redis: it would not see the others' edits
        assert str(data) in err and "HYPERTAB_REDIS_URL" in err
    finally:
        for hub in hubs:
            hub.stop()
    alone = Hub(data).start()  # they are gone: a lone hub may serve it again
    alone.stop()


pytestmark = pytest.mark.timeout(120)
