"""JWT headers never choose the key, and RS256/ES256 with a JWKS file work from ``serve``.

RFC 8725 §3.10: a token whose header carries or points at key material (``jku``, ``x5u``,
``x5c``, ``jwk``) is refused even when its signature is valid; with a JWKS file configured
a ``kid`` must name one of its keys. ``hypertab serve`` takes the JWT settings as flags or
``HYPERTAB_JWT_*`` variables (it used to take only the HS256 secret and issuer).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sec_identity_helpers import cli
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.auth.errors import AuthError, AuthFailure
from server.auth.jwt import JwtConfig, JwtVerifier

SECRET = "jwt-headers-test-secret-" + "k" * 32
ISSUER = "https://issuer.example"
NOW = 1_800_000_000.0
TENANT = "abcdefghijkl1234"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    rsa_jwk["kid"], ec_jwk["kid"] = "r1", "e1"
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    return {"rsa": rsa_key, "ec": ec_key, "jwks": path, "rsa_jwk": rsa_jwk}


def _claims(tenant: str, now: float) -> dict[str, Any]:
    return {
        "sub": "user-1",
        "aud": "authenticated",
        "iss": ISSUER,
        "iat": int(now) - 5,
        "exp": int(now) + 600,
        "app_metadata": {"tenant": tenant},
    }


def _refused(verifier: JwtVerifier, token: str, reason: AuthFailure) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(token, now=NOW)
    assert info.value.reason is reason, info.value.reason


def _key_headers(keys: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"x5c": ["MIIBszCCAVmgAwIBAgIUZ2V0LW91dA=="]},
        {"jwk": keys["rsa_jwk"]},
    ]


def test_signed_tokens_pointing_at_key_material_are_refused(keys: dict[str, Any]) -> None:
    verifier = JwtVerifier(
        JwtConfig(
            secret=SECRET.encode(),
            algorithms=("HS256", "RS256", "ES256"),
            issuer=ISSUER,
            jwks_path=keys["jwks"],
        )
    )
    claims = _claims(TENANT, NOW)
    # Controls: the same tokens without those headers are accepted.
    assert verifier.verify(pyjwt.encode(claims, SECRET, algorithm="HS256"), now=NOW)
    rs = pyjwt.encode(claims, keys["rsa"], algorithm="RS256", headers={"kid": "r1"})
    assert verifier.verify(rs, now=NOW).subject == "user-1"
    for extra in _key_headers(keys):
        hs = pyjwt.encode(claims, SECRET, algorithm="HS256", headers=extra)
        _refused(verifier, hs, AuthFailure.KEY_IN_HEADER)
        rs = pyjwt.encode(claims, keys["rsa"], algorithm="RS256", headers={"kid": "r1", **extra})
        _refused(verifier, rs, AuthFailure.KEY_IN_HEADER)
    crit = pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"crit": ["b64"], "b64": 0})
    _refused(verifier, crit, AuthFailure.MALFORMED)  # no extension is implemented


def test_a_kid_must_name_a_key_of_the_jwks(keys: dict[str, Any]) -> None:
    claims = _claims(TENANT, NOW)
    both = JwtVerifier(
        JwtConfig(secret=SECRET.encode(), algorithms=("HS256", "ES256"), jwks_path=keys["jwks"])
    )
    es = pyjwt.encode(claims, keys["ec"], algorithm="ES256", headers={"kid": "nope"})
    _refused(both, es, AuthFailure.UNKNOWN_KID)
    hs = pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "nope"})
    _refused(both, hs, AuthFailure.UNKNOWN_KID)  # used to verify with the HMAC secret
    hs_r1 = pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "e1"})
    _refused(both, hs_r1, AuthFailure.BAD_SIGNATURE)  # names an EC key, not the secret
    assert both.verify(pyjwt.encode(claims, keys["ec"], algorithm="ES256"), now=NOW)
    # Without a JWKS file a kid is only a label (Supabase puts one on HS256 tokens).
    hs_only = JwtVerifier(JwtConfig(secret=SECRET.encode()))
    assert hs_only.verify(hs, now=NOW).subject == "user-1"


# --- hypertab serve, end to end --------------------------------------------------------------


def _serve(data: Path, port_file: Path, *flags: str, env: dict[str, str]) -> Any:
    script = Path(sys.executable).parent / "hypertab"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    where = ["--port", "0", "--port-file", str(port_file), "--data-dir", str(data)]
    return subprocess.Popen(
        [*argv, "serve", *where, *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def _status(url: str, token: str) -> int:
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_serve_accepts_rs256_and_es256_from_a_jwks_file_and_refuses_jku(
    keys: dict[str, Any], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    made = await asyncio.to_thread(
        cli, "tenant", "create", "acme", "--json", "--data-dir", str(data)
    )
    assert made.returncode == 0, made.stderr
    tenant = json.loads(made.stdout)["tenant"]["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env["HYPERTAB_JWT_ISSUER"] = ISSUER  # a variable and flags together
    port_file = tmp_path / "port"
    proc = _serve(
        data, port_file,
        "--jwt-jwks", str(keys["jwks"]), "--jwt-algorithm", "RS256",
        "--jwt-algorithm", "ES256", "--jwt-audience", "authenticated", "--jwt-leeway", "5",
        env=env,
    )  # fmt: skip
    try:
        while not port_file.exists():
            assert proc.poll() is None, "server exited"
            await asyncio.sleep(0.05)
        url = f"ws://127.0.0.1:{port_file.read_text().strip()}/v1/ws"
        claims = _claims(tenant, time.time())
        rs = pyjwt.encode(claims, keys["rsa"], algorithm="RS256", headers={"kid": "r1"})
        es = pyjwt.encode(claims, keys["ec"], algorithm="ES256", headers={"kid": "e1"})
        assert await _status(url, rs) == 101
        assert await _status(url, es) == 101
        jku = pyjwt.encode(
            claims, keys["rsa"], algorithm="RS256",
            headers={"kid": "r1", "jku": "https://attacker.example/jwks.json"},
        )  # fmt: skip
        assert await _status(url, jku) == 401
        unknown = pyjwt.encode(claims, keys["rsa"], algorithm="RS256", headers={"kid": "zz"})
        assert await _status(url, unknown) == 401
        wrong_iss = pyjwt.encode(
            {**claims, "iss": "https://other.example"}, keys["rsa"], algorithm="RS256"
        )
        assert await _status(url, wrong_iss) == 401
        hs = pyjwt.encode(claims, SECRET, algorithm="HS256")
        assert await _status(url, hs) == 401  # not configured: no secret given
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    reasons = [
        json.loads(line).get("reason")
        for line in stderr.splitlines()
        if line.startswith("{") and "handshake refused" in line
    ]
    assert reasons == ["key_in_header", "unknown_kid", "bad_issuer", "bad_algorithm"]


def test_serve_refuses_unusable_jwt_settings(tmp_path: Path) -> None:
    loose = tmp_path / "secret"
    loose.write_text("s" * 40)
    os.chmod(loose, 0o644)
    data = str(tmp_path / "data")
    result = cli("serve", "--port", "0", "--jwt-secret-file", str(loose), "--data-dir", data)
    assert result.returncode != 0 and "--jwt-secret-file" in result.stderr
    assert "s" * 40 not in result.stderr
    missing = cli(
        "serve", "--port", "0", "--jwt-jwks", str(tmp_path / "none.json"), "--data-dir", data
    )
    assert missing.returncode != 0 and "JWKS" in missing.stderr
