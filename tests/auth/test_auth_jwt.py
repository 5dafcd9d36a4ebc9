"""JWT verification: algorithm, signature, claims. Pure, no event loop, `now` passed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import traceback
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.jwt import JwtConfig, JwtVerifier
from server.auth.principal import CredentialKind, Plan, Scope

SECRET = b"s" * 32 + b"-super-secret-jwt-key"
NOW = 1_800_000_000.0
TENANT = "tenantabc0001234"


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "user-1",
        "aud": "authenticated",
        "role": "authenticated",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 3600,
        "app_metadata": {"tenant": TENANT},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def hs256(payload: dict[str, Any], secret: bytes = SECRET, **header: Any) -> str:
    return pyjwt.encode(payload, secret, algorithm="HS256", headers=header or None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built by hand, for what pyjwt refuses to produce (PEM secrets, alg none)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    sig = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def verifier(**config: Any) -> JwtVerifier:
    config.setdefault("secret", SECRET)
    return JwtVerifier(JwtConfig(**config))


def refused(v: JwtVerifier, token: str, reason: AuthFailure) -> None:
    with pytest.raises(AuthError) as info:
        v.verify(token, now=NOW)
    err = info.value
    assert err.reason is reason, err.reason
    text = str(err) + repr(err) + "".join(traceback.format_exception(err))
    assert token not in text
    signature = token.split(".")[-1]
    assert len(signature) < 16 or signature not in text
    assert SECRET.decode() not in text


@pytest.fixture(scope="module")
def asym(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    rsa_jwk["kid"], ec_jwk["kid"] = "r1", "e1"
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"rsa": rsa_key, "ec": ec_key, "path": path, "rsa_pem": pem}


# -- accepted -------------------------------------------------------------------------------


def test_valid_token_gives_user_principal() -> None:
    p = verifier().verify(hs256(claims()), now=NOW, plan=Plan.TEAM)
    assert p.kind is CredentialKind.JWT
    assert p.tenant == TENANT and p.subject == "user-1"
    assert p.credential_id == f"jwt:{TENANT}:user-1"
    assert p.scopes == {Scope.TABLES_READ, Scope.TABLES_WRITE}
    assert p.expires_at == int(NOW) + 3600
    assert p.plan is Plan.TEAM and p.tables is None


def test_scopes_and_tables_from_configurable_claims() -> None:
    token = hs256(
        claims(
            app_metadata={"tenant": TENANT, "scopes": ["tables:read", "bogus"], "tables": ["t1"]}
        )
    )
    p = verifier().verify(token, now=NOW)
    assert p.scopes == {Scope.TABLES_READ}  # unknown names dropped, never granted
    assert p.tables == {"t1"}
    custom = verifier(tenant_claim="org", scopes_claim="perm")
    p = custom.verify(hs256(claims(org=TENANT, perm="tables:read audit:read")), now=NOW)
    assert p.scopes == {Scope.TABLES_READ, Scope.AUDIT_READ}


def test_leeway_applies_to_exp() -> None:
    token = hs256(claims(exp=int(NOW) - 10))
    assert verifier().verify(token, now=NOW).subject == "user-1"
    refused(verifier(leeway=0), token, AuthFailure.EXPIRED)


def test_issuer_checked_when_configured() -> None:
    v = verifier(issuer="https://x.supabase.co/auth/v1")
    assert v.verify(hs256(claims(iss="https://x.supabase.co/auth/v1")), now=NOW)
    refused(v, hs256(claims(iss="https://evil.example/auth/v1")), AuthFailure.BAD_ISSUER)
    refused(v, hs256(claims()), AuthFailure.BAD_ISSUER)


def test_rs256_and_es256_from_local_jwks(asym: dict[str, Any]) -> None:
    v = JwtVerifier(JwtConfig(algorithms=("RS256", "ES256"), jwks_path=asym["path"]))
    rs = pyjwt.encode(claims(), asym["rsa"], algorithm="RS256", headers={"kid": "r1"})
    es = pyjwt.encode(claims(), asym["ec"], algorithm="ES256", headers={"kid": "e1"})
    assert v.verify(rs, now=NOW).subject == "user-1"
    assert v.verify(es, now=NOW).subject == "user-1"


# -- refused: algorithm and signature ---------------------------------------------------------


def test_wrong_secret_refused() -> None:
    refused(verifier(), hs256(claims(), secret=b"w" * 40), AuthFailure.BAD_SIGNATURE)


def test_alg_none_refused() -> None:
    token = forge({"alg": "none", "typ": "JWT"}, claims(), None)
    refused(verifier(), token, AuthFailure.BAD_ALGORITHM)
    refused(verifier(), forge({"alg": "None"}, claims(), None), AuthFailure.BAD_ALGORITHM)


def test_algorithm_not_in_config_refused(asym: dict[str, Any]) -> None:
    rs = pyjwt.encode(claims(), asym["rsa"], algorithm="RS256", headers={"kid": "r1"})
    refused(verifier(), rs, AuthFailure.BAD_ALGORITHM)
    hs384 = pyjwt.encode(claims(), SECRET, algorithm="HS384")
    refused(verifier(), hs384, AuthFailure.BAD_ALGORITHM)


def test_hs256_signed_with_public_key_pem_refused(asym: dict[str, Any]) -> None:
    token = forge({"alg": "HS256", "typ": "JWT", "kid": "r1"}, claims(), asym["rsa_pem"])
    only_rsa = JwtVerifier(JwtConfig(algorithms=("RS256",), jwks_path=asym["path"]))
    refused(only_rsa, token, AuthFailure.BAD_ALGORITHM)
    both = verifier(algorithms=("HS256", "RS256"), jwks_path=asym["path"])
    refused(both, token, AuthFailure.BAD_SIGNATURE)
    with pytest.raises(AuthConfigError):
        JwtConfig(secret=asym["rsa_pem"])  # the confusion setup itself is refused


def test_key_of_one_family_never_verifies_the_other(asym: dict[str, Any]) -> None:
    v = JwtVerifier(JwtConfig(algorithms=("RS256", "ES256"), jwks_path=asym["path"]))
    # ES256 token pointing at the RSA key id, and the reverse: no key of that family.
    es_as_r = pyjwt.encode(claims(), asym["ec"], algorithm="ES256", headers={"kid": "r1"})
    rs_as_e = pyjwt.encode(claims(), asym["rsa"], algorithm="RS256", headers={"kid": "e1"})
    refused(v, es_as_r, AuthFailure.BAD_SIGNATURE)
    refused(v, rs_as_e, AuthFailure.BAD_SIGNATURE)
    # An RS256 signature relabelled as ES256 verifies against no EC key.
    rs = pyjwt.encode(claims(), asym["rsa"], algorithm="RS256", headers={"kid": "e1"})
    header = _b64(json.dumps({"alg": "ES256", "kid": "e1"}).encode())
    refused(v, header + rs[rs.index(".") :], AuthFailure.BAD_SIGNATURE)


def test_garbage_refused() -> None:
    v = verifier()
    refused(v, "not-a-jwt", AuthFailure.MALFORMED)
    refused(v, "a.b.c", AuthFailure.MALFORMED)
    refused(v, hs256(claims()) + "x" * 9000, AuthFailure.MALFORMED)
    with pytest.raises(AuthError) as info:
        v.verify("", now=NOW)
    assert info.value.reason is AuthFailure.MISSING


# -- refused: claims -------------------------------------------------------------------------


def test_expired_refused() -> None:
    refused(verifier(), hs256(claims(exp=int(NOW) - 31)), AuthFailure.EXPIRED)


def test_future_nbf_and_iat_refused() -> None:
    refused(verifier(), hs256(claims(nbf=int(NOW) + 60)), AuthFailure.NOT_YET_VALID)
    refused(verifier(), hs256(claims(iat=int(NOW) + 60)), AuthFailure.NOT_YET_VALID)
    assert verifier().verify(hs256(claims(nbf=int(NOW) + 20)), now=NOW)  # within leeway


@pytest.mark.parametrize("claim", ["exp", "iat", "sub"])
def test_missing_required_claim_refused(claim: str) -> None:
    refused(verifier(), hs256(claims(**{claim: None})), AuthFailure.BAD_CLAIMS)


def test_ill_typed_claims_refused() -> None:
    refused(verifier(), hs256(claims(exp="tomorrow")), AuthFailure.BAD_CLAIMS)
    refused(verifier(), hs256(claims(sub=42)), AuthFailure.BAD_CLAIMS)
    refused(verifier(), hs256(claims(app_metadata={})), AuthFailure.BAD_CLAIMS)
    refused(verifier(), hs256(claims(app_metadata={"tenant": "../etc"})), AuthFailure.BAD_CLAIMS)
    bad_scopes = claims(app_metadata={"tenant": TENANT, "scopes": {"a": 1}})
    refused(verifier(), hs256(bad_scopes), AuthFailure.BAD_CLAIMS)


def test_wrong_or_missing_audience_refused() -> None:
    refused(verifier(), hs256(claims(aud="anon-app")), AuthFailure.BAD_AUDIENCE)
    refused(verifier(), hs256(claims(aud=None)), AuthFailure.BAD_AUDIENCE)


@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_anon_and_service_role_refused(role: str) -> None:
    refused(verifier(), hs256(claims(role=role)), AuthFailure.FORBIDDEN_ROLE)


# -- configuration ---------------------------------------------------------------------------


def test_short_secret_refused_at_config() -> None:
    with pytest.raises(AuthConfigError):
        JwtConfig(secret=b"x" * 31)
    with pytest.raises(AuthConfigError):
        JwtConfig(secret=None)


def test_bad_configs_refused(asym: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError):
        JwtConfig(secret=SECRET, algorithms=("none",))
    with pytest.raises(AuthConfigError):
        JwtConfig(secret=SECRET, algorithms=())
    with pytest.raises(AuthConfigError):
        JwtConfig(algorithms=("RS256",))  # no JWKS
    with pytest.raises(AuthConfigError):
        JwtConfig(secret=SECRET, leeway=3600)
    private = RSAAlgorithm.to_jwk(asym["rsa"], as_dict=True)
    path = tmp_path / "private.json"
    path.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(AuthConfigError):
        JwtConfig(algorithms=("RS256",), jwks_path=path)
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    with pytest.raises(AuthConfigError):
        JwtConfig(algorithms=("RS256",), jwks_path=path)


def test_config_repr_hides_secret() -> None:
    assert SECRET.decode() not in repr(JwtConfig(secret=SECRET))


# -- verified claims kept by token hash ------------------------------------------------------


def test_a_verified_token_is_answered_again_without_parsing() -> None:
    v = verifier()
    token = hs256(claims())
    first = v.verify_claims(token, now=NOW)
    assert first.issued_at == int(NOW) - 10
    # pyjwt is not consulted again: the token is known by its hash (the original string is
    # not kept), and the same claims come back.
    assert token not in repr(v.__dict__)
    pyjwt_decode = pyjwt.decode
    try:
        pyjwt.decode = None  # type: ignore[assignment]
        assert v.verify_claims(token, now=NOW + 1) == first
    finally:
        pyjwt.decode = pyjwt_decode


def test_a_known_token_still_expires_and_is_forgotten() -> None:
    v = verifier(leeway=0)
    token = hs256(claims(exp=int(NOW) + 60))
    assert v.verify(token, now=NOW).subject == "user-1"
    with pytest.raises(AuthError) as info:
        v.verify(token, now=NOW + 60)
    assert info.value.reason is AuthFailure.EXPIRED
    # Forgotten: a clock set back verifies it from scratch, and it is accepted again.
    assert v.verify(token, now=NOW).subject == "user-1"


def test_a_known_token_is_not_valid_before_its_time() -> None:
    v = verifier(leeway=0)
    token = hs256(claims(nbf=int(NOW) + 10, iat=int(NOW) + 10))
    assert v.verify(token, now=NOW + 20).subject == "user-1"
    with pytest.raises(AuthError) as info:
        v.verify(token, now=NOW)
    assert info.value.reason is AuthFailure.NOT_YET_VALID


def test_refused_tokens_are_not_kept() -> None:
    v = verifier()
    token = hs256(claims(), secret=b"w" * 40)
    for _ in range(2):
        refused(v, token, AuthFailure.BAD_SIGNATURE)
    # One changed character of a verified token is another token: verified from scratch.
    good = hs256(claims())
    v.verify(good, now=NOW)
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    refused(v, tampered, AuthFailure.BAD_SIGNATURE)


def test_the_cache_is_bounded() -> None:
    from server.auth import jwt as jwt_module

    v = verifier()
    for i in range(jwt_module.VERIFIED_CACHE_SIZE + 5):
        v.verify(hs256(claims(sub=f"user-{i}")), now=NOW)
    assert len(v._verified) <= jwt_module.VERIFIED_CACHE_SIZE
