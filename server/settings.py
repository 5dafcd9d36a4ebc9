"""The one configuration: a TOML file, ``HYPERTAB_*`` environment overrides, flags over both.

How it works
------------
:class:`Settings` is a msgspec ``Struct``: every setting is a field whose annotation carries
its type and constraints (``Meta(ge=…)``), its meaning (``description``) and, in ``extra``,
what it accepts in words and its ``serve`` flag. :func:`load` layers the sources — defaults,
then the file (``--config`` or ``HYPERTAB_CONFIG``), then the environment (``HYPERTAB_`` +
the name in upper case, see :data:`ENV_NAMES`), then the command-line flags given — and
decodes each value on its own with ``msgspec.convert`` against that field's annotation, so
one run reports *every* bad value and unknown key (:class:`SettingsError`), each named with
its source (``config.toml: port``, ``HYPERTAB_PORT``, ``--port``) and what it accepts.
Environment values are text: ``strict=False`` lets msgspec read ``"8765"`` as an int and
``"true"`` as a bool; lists are comma-separated there.

Secrets are never read from the file (a config file is often world-readable, versioned or
shared): :data:`SECRET_ENV` lists the variables that carry them. Naming one of them in the
file is an error that says which variable to use. :func:`example` prints a commented file
with every setting; :func:`settings_table` is the table in ``docs/operations.md``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from server.http.hosts import host_name

__all__ = [
    "ENV_CONFIG",
    "ENV_NAMES",
    "SECRET_ENV",
    "Settings",
    "SettingsError",
    "example",
    "load",
    "settings_table",
]

ENV_CONFIG = "HYPERTAB_CONFIG"
"""The environment variable naming the TOML file (``--config`` overrides it)."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
JwtAlgorithm = Literal["HS256", "RS256", "ES256"]


def _m(description: str, accepts: str, flag: str | None = None) -> Meta:
    extra: dict[str, Any] = {"accepts": accepts}
    if flag is not None:
        extra["flag"] = flag
    return Meta(description=description, extra=extra)


_Positive = Meta(ge=1)


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every setting of ``hypertab serve`` (and the data directory of every command)."""

    data_dir: Annotated[
        str, _m("data directory: control.db, tenants/, keys", "a path", "--data-dir")
    ] = "data"
    host: Annotated[str, _m("address to bind", "an IP address or host name", "--host")] = (
        "127.0.0.1"
    )
    port: Annotated[
        int,
        Meta(ge=0, le=65535),
        _m("port to bind; 0 picks a free one", "an integer from 0 to 65535", "--port"),
    ] = 8765
    environment: Annotated[
        Literal["live", "test"],
        _m("which API keys are accepted (ht_live_… or ht_test_…)", "live or test"),
    ] = "live"
    durability: Annotated[
        Literal["process", "power"],
        _m(
            "process: acked ops survive a crash of the server; power: power loss too "
            "(one fsync per group commit)",
            "process or power",
            "--durability",
        ),
    ] = "process"
    log_level: Annotated[
        LogLevel,
        _m("JSON logs on stderr at this level", "DEBUG, INFO, WARNING or ERROR", "--log-level"),
    ] = "INFO"
    tls_cert: Annotated[
        str | None,
        _m(
            "PEM certificate chain: serve wss:// and https:// (TLS 1.2+); needs tls_key",
            "a path to a PEM file",
            "--tls-cert",
        ),
    ] = None
    tls_key: Annotated[
        str | None,
        _m("PEM private key of tls_cert (mode 0600)", "a path to a PEM file", "--tls-key"),
    ] = None
    trusted_proxies: Annotated[
        list[str],
        _m(
            "TLS-terminating proxies whose X-Forwarded-For/-Proto headers are believed",
            "a list of IP addresses or networks (env: comma-separated)",
            "--trusted-proxy",
        ),
    ] = []
    allowed_origins: Annotated[
        list[str],
        _m(
            "browser Origins allowed for every tenant (each tenant adds its own)",
            "a list of scheme://host[:port] (env: comma-separated)",
        ),
    ] = []
    allowed_hosts: Annotated[
        list[str],
        _m(
            "Host header names the hub answers besides IP addresses, localhost and host "
            "(others get 421: DNS rebinding); *.example.com for subdomains, * for any",
            "a list of host names, *.domain or * (env: comma-separated)",
        ),
    ] = []
    redis_url: Annotated[
        str | None,
        _m(
            "lets several hub processes serve one data dir: shared rate windows, revocations, "
            "change and presence broadcasts; without it a second process on the data dir "
            "refuses to start (docs/architecture.md)",
            "a redis:// or rediss:// URL",
        ),
    ] = None
    workers: Annotated[
        int,
        Meta(ge=1, le=64),
        _m(
            "hub processes serving one port, started and restarted by `serve` (uvloop each); "
            "more than 1 needs redis_url (docs/operations.md)",
            "an integer from 1 to 64",
            "--workers",
        ),
    ] = 1
    max_connections_per_credential: Annotated[
        int, _Positive, _m("open sockets one key or token may hold", "an integer >= 1")
    ] = 1000
    jwt_secret_file: Annotated[
        str | None,
        _m(
            "HS256 secret (>= 32 bytes) in a file of mode 0600 (or $HYPERTAB_JWT_SECRET)",
            "a path",
            "--jwt-secret-file",
        ),
    ] = None
    jwt_jwks: Annotated[
        str | None,
        _m("local JWKS file with RS256/ES256 public keys", "a path", "--jwt-jwks"),
    ] = None
    jwt_algorithms: Annotated[
        list[JwtAlgorithm],
        _m(
            "accepted JWT algorithms; empty: HS256 with a secret, RS256+ES256 with a JWKS",
            "a list of HS256, RS256, ES256 (env: comma-separated)",
            "--jwt-algorithm",
        ),
    ] = []
    jwt_issuer: Annotated[str | None, _m("required iss claim", "a string", "--jwt-issuer")] = None
    jwt_audience: Annotated[str, _m("required aud claim", "a string", "--jwt-audience")] = (
        "authenticated"
    )
    jwt_leeway: Annotated[
        float,
        Meta(ge=0, le=300),
        _m("clock leeway for exp/nbf/iat, seconds", "a number from 0 to 300", "--jwt-leeway"),
    ] = 30.0
    rate_limits: Annotated[
        str,
        _m(
            "ops per minute per plan, overriding some (free=100,pro=1000,team=10000,"
            "enterprise=50000); off disables every rate limit (trusted load tests only)",
            "plan=N pairs, comma-separated, or off",
        ),
    ] = ""
    burst_per_second: Annotated[
        int, _Positive, _m("messages per second per connection", "an integer >= 1")
    ] = 20
    abuse_denials: Annotated[
        int,
        _Positive,
        _m("refusals within 10 s that close a connection (4029)", "an integer >= 1"),
    ] = 20
    auth_failures_per_minute: Annotated[
        int,
        _Positive,
        _m("failed handshakes per peer address before 429", "an integer >= 1"),
    ] = 30
    audit_retention_days: Annotated[
        float,
        Meta(gt=0),
        _m("audit entries older than this are purged", "a number > 0"),
    ] = 90.0

    alert_webhook_url: Annotated[
        str | None,
        _m(
            "operator alert webhook; unset: log sink only (docs/alerts.md)",
            "an https:// URL (http:// to loopback only)",
        ),
    ] = None
    alert_webhook_secret_file: Annotated[
        str | None,
        _m(
            "the alert webhook's HMAC signing secret (>= 16 bytes) in a file of mode 0600 "
            "(or $HYPERTAB_ALERT_WEBHOOK_SECRET); required with the URL",
            "a path",
        ),
    ] = None
    alert_log: Annotated[
        Literal["on", "off"], _m("off silences the `alert: <kind>` WARNING lines", "on or off")
    ] = "on"
    alert_poll: Annotated[
        float, Meta(gt=0), _m("seconds between alert outbox checks", "a number > 0")
    ] = 0.05
    alert_auth_failures: Annotated[
        int,
        _Positive,
        _m(
            "failed handshakes per address or tenant within alert_auth_window that raise "
            "handshake_failures",
            "an integer >= 1",
        ),
    ] = 20
    alert_auth_window: Annotated[
        float, Meta(gt=0), _m("the window of alert_auth_failures, seconds", "a number > 0")
    ] = 60.0
    delivery_retry_base: Annotated[
        float,
        Meta(gt=0),
        _m(
            "first backoff of alert and webhook deliveries (s; doubled per attempt)", "a number > 0"
        ),
    ] = 0.5
    delivery_retry_max_delay: Annotated[
        float, Meta(gt=0), _m("longest backoff between deliveries (s)", "a number > 0")
    ] = 300.0
    delivery_max_attempts: Annotated[
        int, _Positive, _m("attempts before a delivery is failed", "an integer >= 1")
    ] = 20
    delivery_max_age: Annotated[
        float, Meta(gt=0), _m("age (s) after which an alert is failed", "a number > 0")
    ] = 86_400.0
    delivery_timeout: Annotated[
        float, Meta(gt=0), _m("one delivery attempt (s)", "a number > 0")
    ] = 10.0
    delivery_allow_networks: Annotated[
        list[str],
        _m(
            "networks deliveries may reach although private (tenant webhooks: loopback too)",
            "a list of IP networks (env: comma-separated)",
        ),
    ] = []

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` (the process environment) with every setting written back as its
        ``HYPERTAB_*`` variable: for parts that read a mapping of variables (alerts,
        deliveries), so the file's values reach them too. Unset settings are removed."""
        out = dict(base)
        for name in self.__struct_fields__:
            value = getattr(self, name)
            env = ENV_NAMES[name]
            if value is None:
                out.pop(env, None)
            elif isinstance(value, list):
                out[env] = ",".join(str(v) for v in value)
            else:
                out[env] = str(value)
        return out

    def trusted_networks(
        self,
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted_proxies` as networks (validated by :func:`load`)."""
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)


ENV_NAMES: dict[str, str] = {
    name: "HYPERTAB_ENV" if name == "environment" else f"HYPERTAB_{name.upper()}"
    for name in Settings.__struct_fields__
}
"""Each setting's environment variable."""

SECRET_ENV: dict[str, str] = {
    "HYPERTAB_PEPPER": "API-key pepper, base64 (else DATA_DIR/pepper.key, made on first run)",
    "HYPERTAB_JWT_SECRET": "HS256 secret for JWTs (or jwt_secret_file)",
    "HYPERTAB_METRICS_TOKEN": "bearer token for /metrics from non-loopback peers",
    "HYPERTAB_MASTER_KEYS": "master keys inline, id:base64,… (last = current; docs/secrets.md)",
    "HYPERTAB_KEY_FILE": "master key file (else DATA_DIR/master.keys; docs/secrets.md)",
    "HYPERTAB_ALERT_WEBHOOK_SECRET": "alert webhook signing secret (or alert_webhook_secret_file)",
}
"""Secrets and key locations: environment only, never in the file."""

_SECRET_KEYS = {env.removeprefix("HYPERTAB_").lower(): env for env in SECRET_ENV} | {
    "master_key_file": "HYPERTAB_KEY_FILE",
}


class SettingsError(Exception):
    """Bad settings: :attr:`problems` holds one line per bad key or value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    annotation: Any
    default: Any
    description: str
    accepts: str
    flag: str | None

    @property
    def is_list(self) -> bool:
        return typing.get_origin(_strip(self.annotation)) is list


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _fields() -> tuple[_Field, ...]:
    hints = typing.get_type_hints(Settings, include_extras=True)
    defaults = Settings()
    out = []
    for name in Settings.__struct_fields__:
        annotation = hints[name]
        metas = [a for a in typing.get_args(annotation)[1:] if isinstance(a, Meta)]
        described = next(m for m in metas if m.description)
        extra = described.extra or {}
        out.append(
            _Field(
                name,
                annotation,
                getattr(defaults, name),
                described.description or "",
                extra["accepts"],
                extra.get("flag"),
            )
        )
    return tuple(out)


FIELDS: tuple[_Field, ...] = _fields()
"""Every setting, in the order of :class:`Settings`."""
_BY_NAME = {f.name: f for f in FIELDS}


def _check(f: _Field, value: Any, *, from_text: bool) -> Any:
    """``value`` decoded as field ``f``; ``ValueError`` with msgspec's reason when it is not."""
    if from_text and isinstance(value, str):
        if f.is_list:
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif f.name == "log_level":
            value = value.upper()
        elif value == "" and f.default is None:  # set but empty: unset
            value = None
    try:
        decoded = msgspec.convert(value, f.annotation, strict=not from_text)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc).replace(" - at `$`", "")) from None
    if f.name in ("trusted_proxies", "delivery_allow_networks"):
        for entry in decoded:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
    if f.name == "allowed_hosts":
        for entry in decoded:
            if entry != "*" and host_name(entry.removeprefix("*.")) is None:
                raise ValueError(f"{entry!r} is not a host name, *.domain or *")
    if f.name == "rate_limits":
        _check_rate_limits(decoded)
    return decoded


def _check_rate_limits(value: str) -> None:
    if value.strip().lower() == "off":
        return
    plans = ("free", "pro", "team", "enterprise")
    for item in value.split(","):
        if not item.strip():
            continue
        plan, sep, limit = item.partition("=")
        if not sep or plan.strip() not in plans:
            raise ValueError(f"{item.strip()!r} is not plan=N with a plan of {', '.join(plans)}")
        try:
            if int(limit) < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"{item.strip()!r}: the limit must be an integer >= 1") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_file(path: Path) -> dict[str, Any]:
    """The TOML file's table; :class:`SettingsError` when it cannot be read or parsed."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError([f"{path}: no such configuration file"]) from None
    except OSError as exc:
        raise SettingsError([f"{path}: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"{path}: not valid TOML ({exc})"]) from None


def load(
    file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults, then ``file`` (else ``$HYPERTAB_CONFIG``), then ``HYPERTAB_*``, then ``flags``.

    ``flags`` maps setting names to values already parsed by argparse (only flags given).
    Raises :class:`SettingsError` listing every problem found, not just the first.
    """
    environ = os.environ if env is None else env
    if file is None and environ.get(ENV_CONFIG):
        file = Path(environ[ENV_CONFIG])
    values: dict[str, Any] = {}
    problems: list[str] = []
    if file is not None:
        try:
            table = read_file(file)
        except SettingsError as exc:
            problems += exc.problems
            table = {}
        for key, value in table.items():
            f = _BY_NAME.get(key)
            if f is None:
                problems.append(_unknown(file, key))
                continue
            try:
                values[key] = _check(f, value, from_text=False)
            except ValueError as exc:
                problems.append(f"{file}: {key} = {_shown(value)}: {exc}; accepts {f.accepts}")
    for f in FIELDS:
        raw = environ.get(ENV_NAMES[f.name])
        if raw is None:
            continue
        try:
            values[f.name] = _check(f, raw, from_text=True)
        except ValueError as exc:
            problems.append(f"{ENV_NAMES[f.name]}={_shown(raw)}: {exc}; accepts {f.accepts}")
    for name, value in (flags or {}).items():
        f = _BY_NAME[name]
        try:
            values[name] = _check(f, value, from_text=isinstance(value, str))
        except ValueError as exc:
            problems.append(f"{f.flag or name} {_shown(value)}: {exc}; accepts {f.accepts}")
    if values.get("tls_cert") and not values.get("tls_key"):
        problems.append("tls_cert is set without tls_key: give both (or neither)")
    if values.get("tls_key") and not values.get("tls_cert"):
        problems.append("tls_key is set without tls_cert: give both (or neither)")
    if problems:
        raise SettingsError(problems)
    return msgspec.convert(values, Settings)


def _unknown(file: Path, key: str) -> str:
    if key in _SECRET_KEYS:
        return (
            f"{file}: {key}: secrets are not read from the file; "
            f"set ${_SECRET_KEYS[key]} in the environment"
        )
    close = [f.name for f in FIELDS if key.replace("-", "_") == f.name]
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{file}: unknown key {key!r}{hint}; known keys: {', '.join(_BY_NAME)}"


def _toml(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def example() -> str:
    """A commented TOML file with every setting at its default (``hypertab config example``)."""
    lines = [
        "# Hypertab configuration. Use with: hypertab serve --config FILE",
        "# (or HYPERTAB_CONFIG=FILE). Each setting is overridden by its HYPERTAB_* variable,",
        "# and that by its flag. Check a file with: hypertab config check --config FILE",
        "# Secrets never go here; they come from the environment:",
    ]
    lines += [f"#   {env}: {meaning}" for env, meaning in SECRET_ENV.items()]
    for f in FIELDS:
        lines.append("")
        lines.append(f"# {f.description}.")
        via = f"${ENV_NAMES[f.name]}" + (f", {f.flag}" if f.flag else "")
        lines.append(f"# Accepts {f.accepts}. Also: {via}.")
        line = f"{f.name} = {_toml(f.default)}"
        lines.append(f"# {line}" if f.default is None else line)
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """Every setting as a Markdown table: name, env var, flag, type, default, meaning."""
    rows = [
        "| Setting | Environment | Flag | Accepts | Default | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in FIELDS:
        default = "unset" if f.default is None else f"`{_toml(f.default)}`"
        flag = f"`{f.flag}`" if f.flag else ""
        rows.append(
            f"| `{f.name}` | `{ENV_NAMES[f.name]}` | {flag} | {f.accepts} | {default} | "
            f"{f.description} |"
        )
    for env, meaning in SECRET_ENV.items():
        rows.append(f"| (environment only) | `{env}` | | secret | unset | {meaning} |")
    return "\n".join(rows)
