"""Micro-benchmark of handshake authentication: API key (one indexed read) and JWT (HS256).

Prints one JSON line: median and p99 microseconds per verification, sequential, on a fresh
control.db in a temporary directory with 1,000 tenants.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import jwt as pyjwt

from server.auth.jwt import JwtConfig, JwtVerifier
from server.control.plane import ControlPlane

PEPPER = b"bench-pepper-" + b"x" * 32
SECRET = b"bench-jwt-secret-" + b"y" * 32
ROUNDS = 2000


def _summary(samples: list[float]) -> dict[str, float]:
    samples.sort()
    return {
        "median_us": round(statistics.median(samples) * 1e6, 1),
        "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6, 1),
    }


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plane = await ControlPlane.open(
            Path(tmp), pepper=PEPPER, jwt=JwtVerifier(JwtConfig(secret=SECRET))
        )
        try:
            now = time.time()
            keys = [(await plane.create_tenant(f"t{i}", now=now)) for i in range(1000)]
            tenant, admin = keys[500]
            token = pyjwt.encode(
                {
                    "sub": "u",
                    "aud": "authenticated",
                    "iat": int(now),
                    "exp": int(now) + 3600,
                    "app_metadata": {"tenant": tenant.id},
                },
                SECRET,
                algorithm="HS256",
            )
            api, jwts = [], []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                await plane.authenticate(admin.secret, now=now)
                api.append(time.perf_counter() - start)
                start = time.perf_counter()
                await plane.authenticate(token, now=now)
                jwts.append(time.perf_counter() - start)
        finally:
            await plane.close()
    print(
        json.dumps(
            {
                "bench": "handshake_verify",
                "rounds": ROUNDS,
                "api_key": _summary(api),
                "jwt": _summary(jwts),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
