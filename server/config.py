"""Server configuration: the runtime :class:`Config` a :class:`~server.app.HypertabServer` runs.

``hypertab serve`` builds it from the validated :class:`~server.settings.Settings` (TOML file,
``HYPERTAB_*`` environment, flags: :meth:`Config.from_settings`); tests build it directly.

Secrets (the API-key pepper, the JWT secret) come from the environment or from files in the
data directory created with mode 0600 on first run; they are never printed or logged.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from server.store.schema import Durability

if TYPE_CHECKING:
    from server.hub.admission import AdmissionSettings
    from server.settings import Settings

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
    allowed_hosts: tuple[str, ...] = field(
        default_factory=lambda: _split(os.environ.get("HYPERTAB_ALLOWED_HOSTS"))
    )
    """``Host`` names answered besides IP literals, localhost and :attr:`host`
    (``server/http/hosts.py``); ``*.example.com`` for subdomains, ``*`` for any."""
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
    keepalive_interval_s: float | None = 20.0
    """Seconds between the server's keepalive pings on each connection (None: none)."""
    keepalive_timeout_s: float | None = 20.0
    """Seconds a pong may take before the connection is closed with 1011 (None: never)."""
    tls_cert: Path | None = None
    """PEM certificate chain; with :attr:`tls_key`, the server speaks TLS (wss://, https://)."""
    tls_key: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    """Peers (IPs or networks) whose ``X-Forwarded-For``/``-Proto`` headers are believed."""
    admission: AdmissionSettings | None = None
    """Rate-limit settings; ``None`` reads the ``HYPERTAB_*`` environment."""
    audit_retention_days: float | None = None
    """``None`` reads ``HYPERTAB_AUDIT_RETENTION_DAYS`` (default 90)."""
    environ: Mapping[str, str] | None = None
    """The ``HYPERTAB_*`` variables the alert and delivery parts read (``None``: the process
    environment); :meth:`from_settings` writes the validated settings into it."""

    @classmethod
    def from_settings(cls, settings: Settings, *, jwt_secret: str | None = None) -> Config:
        """The runtime config for validated ``settings``. Secrets (JWT secret, metrics token,
        pepper, master keys) still come from the environment; ``jwt_secret`` overrides."""
        from server.hub.admission import AdmissionSettings, plan_limits_from_env
        from server.ratelimit.policy import LimitPolicy

        s = settings
        limits_off = s.rate_limits.strip().lower() == "off"
        admission = (
            AdmissionSettings(enabled=False)
            if limits_off
            else AdmissionSettings(
                policy=LimitPolicy(
                    plan_limits=plan_limits_from_env(s.rate_limits), burst_limit=s.burst_per_second
                ),
                abuse_denials=s.abuse_denials,
                auth_failures=s.auth_failures_per_minute,
            )
        )
        config = cls(
            data_dir=Path(s.data_dir),
            host=s.host,
            port=s.port,
            environment=s.environment,
            durability=Durability(s.durability),
            allowed_origins=tuple(s.allowed_origins),
            allowed_hosts=tuple(s.allowed_hosts),
            redis_url=s.redis_url or None,
            jwt_issuer=s.jwt_issuer or None,
            max_connections_per_credential=s.max_connections_per_credential,
            jwt_leeway=s.jwt_leeway,
            jwt_audience=s.jwt_audience,
            jwt_algorithms=tuple(s.jwt_algorithms),
            jwt_jwks=_path(s.jwt_jwks),
            tls_cert=_path(s.tls_cert),
            tls_key=_path(s.tls_key),
            trusted_proxies=tuple(s.trusted_proxies),
            admission=admission,
            audit_retention_days=s.audit_retention_days,
        )
        config.environ = s.environ(os.environ)
        if jwt_secret is not None:
            config.jwt_secret = jwt_secret
        return config
