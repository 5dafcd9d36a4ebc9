"""HTTPS deliveries connect to the checked address yet verify the certificate against the
configured name (the DNS-rebinding defence must not weaken TLS)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.delivery.destination import DestinationPolicy
from server.delivery.errors import SendFailed
from server.delivery.sender import Sender


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, Path, list[dict[str, str]]]]:
    cert, key = self_signed(tmp_path, "hooks.test")
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], cert, seen
    server.shutdown()
    server.server_close()


async def test_https_to_the_pinned_address_verifies_the_name(
    tls_receiver: tuple[int, Path, list[dict[str, str]]],
) -> None:
    port, cert, seen = tls_receiver

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # what the name resolves to, checked once and connected to

    policy = DestinationPolicy(allow=(ipaddress.ip_network("127.0.0.0/8"),), resolver=resolver)
    trust = ssl.create_default_context(cafile=str(cert))
    sender = Sender(policy, timeout=5, verify=trust)
    try:
        status = await sender.post(f"https://hooks.test:{port}/in", b"{}", {"X-A": "1"})
        assert status == 204
        assert seen[0]["host"] == f"hooks.test:{port}"  # the name, not the address
        with pytest.raises(SendFailed, match="not reached"):
            # Same address, another name: the certificate does not cover it.
            await sender.post(f"https://other.test:{port}/in", b"{}", {})
    finally:
        await sender.aclose()
