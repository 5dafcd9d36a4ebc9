"""Server configuration: from the command line and ``HYPERTAB_*`` environment variables.

Secrets (the API-key pepper, the JWT secret) come from the environment or from files in the
data directory created with mode 0600 on first run; they are never printed or logged.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from server.store.schema import Durability

PEPPER_FILE = "pepper.key"


def default_data_dir() -> Path:
    """``HYPERTAB_DATA_DIR``, else ``./data``."""
    return Path(os.environ.get("HYPERTAB_DATA_DIR", "data"))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def load_pepper(data_dir: Path) -> bytes:
    """The API-key pepper: ``HYPERTAB_PEPPER`` (base64), else ``<data_dir>/pepper.key``."""
    env = os.environ.get("HYPERTAB_PEPPER")
    if env:
        return base64.b64decode(env)
    path = data_dir / PEPPER_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it first
            _write_private(path, base64.b64encode(secrets.token_bytes(32)))
    if path.stat().st_mode & 0o077:
        raise SystemExit(f"{path} must not be readable by group or others (chmod 600)")
    return base64.b64decode(path.read_bytes())


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@dataclass(slots=True)
class Config:
    """Everything the server needs to start."""

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8765
    environment: str = field(default_factory=lambda: os.environ.get("HYPERTAB_ENV", "live"))
    durability: Durability = field(
        default_factory=lambda: Durability(os.environ.get("HYPERTAB_DURABILITY", "process"))
    )
    allowed_origins: tuple[str, ...] = field(
        default_factory=lambda: _split(os.environ.get("HYPERTAB_ALLOWED_ORIGINS"))
    )
    redis_url: str | None = field(default_factory=lambda: os.environ.get("HYPERTAB_REDIS_URL"))
    jwt_secret: str | None = field(default_factory=lambda: os.environ.get("HYPERTAB_JWT_SECRET"))
    jwt_issuer: str | None = field(default_factory=lambda: os.environ.get("HYPERTAB_JWT_ISSUER"))
    metrics_token: str | None = field(
        default_factory=lambda: os.environ.get("HYPERTAB_METRICS_TOKEN")
    )
    max_open_stores: int = 256
    max_connections_per_credential: int = field(
        default_factory=lambda: int(
            os.environ.get("HYPERTAB_MAX_CONNECTIONS_PER_CREDENTIAL", "1000")
        )
    )
    jwt_leeway: float = field(
        default_factory=lambda: float(os.environ.get("HYPERTAB_JWT_LEEWAY", "30"))
    )
    jwt_audience: str = field(
        default_factory=lambda: os.environ.get("HYPERTAB_JWT_AUDIENCE", "authenticated")
    )
    jwt_algorithms: tuple[str, ...] = field(
        default_factory=lambda: _split(os.environ.get("HYPERTAB_JWT_ALGORITHMS"))
    )
    """Empty: HS256 when a secret is set, plus RS256 and ES256 when a JWKS file is."""
    jwt_jwks: Path | None = field(
        default_factory=lambda: _path(os.environ.get("HYPERTAB_JWT_JWKS"))
    )
    recheck_seconds: float = 30.0
    send_buffer_bytes: int = 8 << 20
    paced_send_timeout_s: float = 30.0
    """Longest wait for a client to take one frame of a large answer (server/hub/outbox.py)."""
