"""JWT access tokens (Supabase style): signature, algorithm and claims, all checked. Pure.

How it works
------------
1. The algorithm list is the server's (:attr:`JwtConfig.algorithms`); the token header only
   *selects* one of them. ``none`` and anything unlisted are refused (``BAD_ALGORITHM``).
2. A header that carries or points at key material (``jku``, ``x5u``, ``x5c``, ``jwk``) is
   refused outright (``KEY_IN_HEADER``): the key is never the token's to choose (RFC 8725
   §3.10). ``crit`` extensions are refused (``MALFORMED``): we implement none. When a JWKS
   file is configured, a ``kid`` must name one of its keys (``UNKNOWN_KID``), whatever the
   algorithm.
3. The key is chosen by the algorithm's family, never by the token: HS256 uses only the
   configured HMAC secret; RS256 only RSA keys and ES256 only P-256 keys from the local JWKS
   file. A key of one family therefore never verifies a token of another, and an HS256 token
   "signed" with our RSA public key PEM fails (the PEM is not our HMAC secret, and a PEM-like
   secret is refused at configuration).
4. pyjwt checks the signature, ``aud`` and ``iss``. The time claims (``exp``, ``nbf``,
   ``iat``) are checked here against the ``now`` passed in, with :attr:`JwtConfig.leeway`,
   so the module reads no clock and tests need no sleeping.
5. ``exp``, ``iat`` and ``sub`` are required; ``role`` ``anon`` / ``service_role`` are not
   user tokens. Tenant, scopes and table allowlist come from configurable claim paths.

6. Verified claims are kept by the token's SHA-256 (at most :data:`VERIFIED_CACHE_SIZE`
   tokens): presenting the same token again skips the parsing and the signature check, but
   never the time claims, which are checked against each ``now`` again (a token that
   expired is refused and forgotten). Only tokens that passed every check are kept, and
   what a token says cannot change, so the cache answers exactly as a full verification
   would. Whether the token's tenant still exists, or an incident cut its tokens off, is
   checked after this at every handshake.

The tenant is only read here. Whether it exists is the control plane's business
(``server.control.authentication``), which also supplies the tenant's plan.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.ids import is_tenant_id
from server.auth.principal import CredentialKind, Plan, Principal, Scope, TenantId

MIN_SECRET_BYTES = 32
SUPPORTED_ALGORITHMS = frozenset({"HS256", "RS256", "ES256"})
#: Refuse before parsing: no legitimate access token is this large.
MAX_TOKEN_LENGTH = 8192
DEFAULT_USER_SCOPES: frozenset[Scope] = frozenset({Scope.TABLES_READ, Scope.TABLES_WRITE})

_FAMILY = {"HS256": "oct", "RS256": "RSA", "ES256": "EC"}
#: Header parameters that carry or locate a key (RFC 7515 §4.1). (A ``crit`` naming an
#: extension is refused as malformed by pyjwt already: we implement none.)
REFUSED_HEADERS = frozenset({"jku", "x5u", "x5c", "jwk"})
#: Verified tokens remembered (by SHA-256); on overflow the cache is emptied.
VERIFIED_CACHE_SIZE = 2048


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """How access tokens are verified. Invalid settings raise :class:`AuthConfigError`.

    ``secret`` is the HS256 secret (at least 32 bytes). ``jwks_path`` is a local JWKS file
    with the RS256/ES256 public keys (never fetched over the network). Claim paths are dotted
    (``app_metadata.tenant``). A token without the scopes claim gets ``default_scopes``.
    """

    secret: bytes | None = None
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str | None = "authenticated"
    issuer: str | None = None
    leeway: float = 30.0
    tenant_claim: str = "app_metadata.tenant"
    scopes_claim: str = "app_metadata.scopes"
    tables_claim: str = "app_metadata.tables"
    default_scopes: frozenset[Scope] = DEFAULT_USER_SCOPES
    refused_roles: frozenset[str] = frozenset({"anon", "service_role"})
    jwks_path: Path | None = None
    _public_keys: tuple[tuple[str | None, str, Any], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise AuthConfigError("at least one JWT algorithm must be configured")
        unknown = set(self.algorithms) - SUPPORTED_ALGORITHMS
        if unknown:
            raise AuthConfigError(f"unsupported JWT algorithms: {sorted(unknown)}")
        if "HS256" in self.algorithms:
            _check_secret(self.secret)
        elif self.secret is not None:
            raise AuthConfigError("a JWT secret is set but HS256 is not an allowed algorithm")
        if not (0 <= self.leeway <= 300) or math.isnan(self.leeway):
            raise AuthConfigError("JWT leeway must be between 0 and 300 seconds")
        asymmetric = set(self.algorithms) & {"RS256", "ES256"}
        if asymmetric:
            if self.jwks_path is None:
                raise AuthConfigError("RS256/ES256 need a local JWKS file (jwks_path)")
            object.__setattr__(self, "_public_keys", _load_jwks(self.jwks_path))
        elif self.jwks_path is not None:
            raise AuthConfigError("a JWKS file is set but neither RS256 nor ES256 is allowed")

    def __repr__(self) -> str:  # never show the secret
        return (
            f"JwtConfig(algorithms={self.algorithms!r}, audience={self.audience!r}, "
            f"issuer={self.issuer!r}, leeway={self.leeway!r}, jwks_path={self.jwks_path!r})"
        )


def _check_secret(secret: bytes | None) -> None:
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise AuthConfigError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
    stripped = secret.strip()
    # A public key used as an HMAC secret is the classic algorithm-confusion setup: refuse.
    if stripped.startswith(b"-----BEGIN") or stripped.startswith((b"ssh-", b"ecdsa-")):
        raise AuthConfigError("the JWT secret looks like a PEM/SSH key, not an HMAC secret")


def _load_jwks(path: Path) -> tuple[tuple[str | None, str, Any], ...]:
    """``(kid, family, public key object)`` for every usable key in a local JWKS file."""
    # pyjwt (and the cryptography package it loads, ~8 MB) is imported only by a server
    # that verifies JWTs: the embedded default, API keys only, never loads it.
    import jwt as pyjwt
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuthConfigError(f"cannot read JWKS file {path}: {type(exc).__name__}") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys:
        raise AuthConfigError("JWKS file has no keys")
    loaded: list[tuple[str | None, str, Any]] = []
    for jwk in keys:
        if not isinstance(jwk, dict):
            raise AuthConfigError("JWKS entries must be objects")
        if "d" in jwk:
            raise AuthConfigError("JWKS file contains a private key; publish public keys only")
        kty, kid = jwk.get("kty"), jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthConfigError("JWKS kid must be a string")
        try:
            if kty == "RSA":
                loaded.append((kid, "RSA", RSAAlgorithm.from_jwk(jwk)))
            elif kty == "EC" and jwk.get("crv") == "P-256":
                loaded.append((kid, "EC", ECAlgorithm.from_jwk(jwk)))
            else:
                # oct keys belong in `secret`; other curves are not accepted.
                raise AuthConfigError(f"unsupported JWKS key type {kty!r}")
        except pyjwt.PyJWTError:
            raise AuthConfigError("JWKS contains an invalid key") from None
    return tuple(loaded)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The claims of a token whose signature and claims are valid (tenant not yet checked)."""

    tenant: TenantId
    subject: str
    scopes: frozenset[Scope]
    tables: frozenset[str] | None
    expires_at: float
    issued_at: float | None = None
    """The token's ``iat`` (an incident cutoff refuses tokens issued before it)."""
    not_before: float | None = None
    """The token's ``nbf``, if any."""
    _principal: Principal | None = field(default=None, init=False, compare=False, repr=False)
    """The last principal made (a verified token is cached: its next handshake reuses it)."""

    @property
    def credential_id(self) -> str:
        """``jwt:<tenant>:<sub>``: what revocation and the periodic recheck refer to."""
        return f"jwt:{self.tenant}:{self.subject}"

    def principal(self, plan: Plan) -> Principal:
        """The principal for this token, given its tenant's plan (immutable: shared by
        every handshake with the token while the plan stays)."""
        made = self._principal
        if made is not None and made.plan is plan:
            return made
        made = Principal(
            tenant=self.tenant,
            subject=self.subject,
            kind=CredentialKind.JWT,
            credential_id=self.credential_id,
            scopes=self.scopes,
            plan=plan,
            tables=self.tables,
            expires_at=self.expires_at,
        )
        object.__setattr__(self, "_principal", made)  # a memo, not state: frozen otherwise
        return made


def _claim(payload: Mapping[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _time(payload: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as float, ``None`` when absent, ``BAD_CLAIMS`` when ill-typed."""
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(AuthFailure.BAD_CLAIMS)
    return float(value)


class JwtVerifier:
    """Verifies access tokens against a :class:`JwtConfig`."""

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._verified: dict[bytes, VerifiedToken] = {}

    def verify(self, token: str | None, *, now: float, plan: Plan = Plan.FREE) -> Principal:
        """The principal for ``token``, or :class:`AuthError`.

        ``plan`` is the tenant's plan; callers that know the tenant (the control plane) pass
        it. This does not check that the tenant exists: use ``ControlPlane.authenticate_jwt``.
        """
        return self.verify_claims(token, now=now).principal(plan)

    def verify_claims(self, token: str | None, *, now: float) -> VerifiedToken:
        """Check algorithm, signature and claims; return what the token says."""
        if not token:
            raise AuthError(AuthFailure.MISSING)
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise AuthError(AuthFailure.MALFORMED)
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            try:
                self._check_times(known.expires_at, known.issued_at, known.not_before, now)
            except AuthError:
                del self._verified[digest]
                raise
            return known
        verified = self._verify(token, now)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[digest] = verified
        return verified

    def _verify(self, token: str, now: float) -> VerifiedToken:
        """The full check: header, algorithm, key, signature, then the claims."""
        import jwt as pyjwt  # imported here, not at module level: see _load_jwks

        cfg = self.config
        try:
            header = pyjwt.get_unverified_header(token)
        except pyjwt.PyJWTError:
            raise AuthError(AuthFailure.MALFORMED) from None
        if not REFUSED_HEADERS.isdisjoint(header):
            raise AuthError(AuthFailure.KEY_IN_HEADER)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in cfg.algorithms:
            raise AuthError(AuthFailure.BAD_ALGORITHM)
        key = self._key_for(alg, header.get("kid"))
        try:
            payload: dict[str, Any] = pyjwt.decode(
                token,
                key,
                algorithms=[alg],  # exactly one, already checked against the config
                audience=cfg.audience,
                issuer=cfg.issuer,
                options={
                    "require": ["exp", "iat", "sub"],
                    "verify_signature": True,
                    "verify_exp": False,  # time claims: checked below against `now`
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": cfg.audience is not None,
                    "verify_iss": cfg.issuer is not None,
                },
            )
        except pyjwt.InvalidSignatureError:
            raise AuthError(AuthFailure.BAD_SIGNATURE) from None
        except pyjwt.InvalidAlgorithmError:
            raise AuthError(AuthFailure.BAD_ALGORITHM) from None
        except pyjwt.InvalidAudienceError:
            raise AuthError(AuthFailure.BAD_AUDIENCE) from None
        except pyjwt.InvalidIssuerError:
            raise AuthError(AuthFailure.BAD_ISSUER) from None
        except pyjwt.MissingRequiredClaimError as exc:
            reason = {"aud": AuthFailure.BAD_AUDIENCE, "iss": AuthFailure.BAD_ISSUER}.get(
                exc.claim, AuthFailure.BAD_CLAIMS
            )
            raise AuthError(reason) from None
        except pyjwt.DecodeError:
            raise AuthError(AuthFailure.MALFORMED) from None
        except pyjwt.PyJWTError:
            raise AuthError(AuthFailure.BAD_CLAIMS) from None
        return self._check_claims(payload, now)

    def _key_for(self, alg: str, kid: object) -> Any:
        family = _FAMILY[alg]
        keys = self.config._public_keys
        if kid is not None and keys and not any(k[0] == kid for k in keys):
            raise AuthError(AuthFailure.UNKNOWN_KID)
        if family == "oct":
            if kid is not None and keys:
                # The kid names a JWKS key (checked above), which is not our HMAC secret.
                raise AuthError(AuthFailure.BAD_SIGNATURE)
            return self.config.secret
        candidates = [k for k in keys if k[1] == family]
        if kid is not None:
            candidates = [k for k in candidates if k[0] == kid]
        if len(candidates) != 1:
            # No key of this family with that kid (or an ambiguous choice): cannot verify.
            raise AuthError(AuthFailure.BAD_SIGNATURE)
        return candidates[0][2]

    def _check_claims(self, payload: dict[str, Any], now: float) -> VerifiedToken:
        cfg = self.config
        exp, iat, nbf = _time(payload, "exp"), _time(payload, "iat"), _time(payload, "nbf")
        if exp is None or iat is None:
            raise AuthError(AuthFailure.BAD_CLAIMS)
        self._check_times(exp, iat, nbf, now)
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 256:
            raise AuthError(AuthFailure.BAD_CLAIMS)
        role = payload.get("role")
        if role is not None and (not isinstance(role, str) or role in cfg.refused_roles):
            raise AuthError(AuthFailure.FORBIDDEN_ROLE)
        tenant = _claim(payload, cfg.tenant_claim)
        if not is_tenant_id(tenant):
            raise AuthError(AuthFailure.BAD_CLAIMS)
        return VerifiedToken(
            tenant=TenantId(tenant),
            subject=sub,
            scopes=self._scopes(_claim(payload, cfg.scopes_claim)),
            tables=self._tables(_claim(payload, cfg.tables_claim)),
            expires_at=exp,
            issued_at=iat,
            not_before=nbf,
        )

    def _check_times(self, exp: float, iat: float | None, nbf: float | None, now: float) -> None:
        """``EXPIRED`` or ``NOT_YET_VALID`` unless the time claims hold at ``now``."""
        leeway = self.config.leeway
        if now >= exp + leeway:
            raise AuthError(AuthFailure.EXPIRED)
        if (iat is not None and iat > now + leeway) or (nbf is not None and nbf > now + leeway):
            raise AuthError(AuthFailure.NOT_YET_VALID)

    def _scopes(self, raw: object) -> frozenset[Scope]:
        if raw is None:
            return self.config.default_scopes
        if isinstance(raw, str):
            raw = raw.split()  # OAuth style: space-separated
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise AuthError(AuthFailure.BAD_CLAIMS)
        known = {s.value for s in Scope}
        # Unknown scope names are dropped, never mapped: they can only reduce access.
        return frozenset(Scope(s) for s in raw if s in known)

    @staticmethod
    def _tables(raw: object) -> frozenset[str] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
            raise AuthError(AuthFailure.BAD_CLAIMS)
        return frozenset(raw)
