"""``hypertab certificate verify|public-key``: deletion certificates.

``verify`` pins the server's public key: from ``--public-key`` (base64, as printed by
``public-key``), else derived from the data directory's ``signing.key``. A certificate that
was modified, or signed by any other key, fails with exit code 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Commands,
    add_json_flag,
    data_dir,
    data_dir_parent,
    print_json,
    stderr,
)
from server.lifecycle.certificate import (
    InvalidCertificateError,
    load_or_create_signing_key,
    loads_certificate,
    public_key_b64,
    verify_certificate,
)
from server.lifecycle.delete import signing_key_path
from server.secrets.errors import SecretsError


def register(commands: Commands) -> None:
    """Add the ``certificate`` group."""
    group = commands.add_parser("certificate", help="verify deletion certificates")
    sub = group.add_subparsers(dest="certificate_command", metavar="ACTION", required=True)
    parent = data_dir_parent()

    verify = sub.add_parser("verify", parents=[parent], help="check a deletion certificate")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument(
        "--public-key",
        metavar="B64",
        help="the server's public key (default: from DATA_DIR/signing.key)",
    )
    add_json_flag(verify)
    verify.set_defaults(handler=verify_command)

    public = sub.add_parser(
        "public-key", parents=[parent], help="print the server's certificate public key"
    )
    add_json_flag(public)
    public.set_defaults(handler=public_key_command)


def _pinned(args: argparse.Namespace) -> str:
    if args.public_key is not None:
        return str(args.public_key)
    path = signing_key_path(data_dir(args))
    if not path.exists():
        raise CliError(f"no signing key at {path}: pass --public-key")
    try:
        return public_key_b64(load_or_create_signing_key(path))
    except SecretsError as exc:
        raise CliError(str(exc)) from None


def verify_command(args: argparse.Namespace) -> int:
    """``certificate verify FILE``: exit 0 if valid and signed by the pinned key, else 1."""
    pinned = _pinned(args)
    text = args.file.read_bytes()
    try:
        payload = verify_certificate(loads_certificate(text), trusted_keys=[pinned])
    except InvalidCertificateError as exc:
        if args.json:
            print_json({"valid": False, "reason": str(exc)})
        else:
            stderr(f"hypertab: error: {exc}")
        return EXIT_FAILURE
    if args.json:
        print_json({"valid": True, "payload": payload})
    else:
        tenant = payload["tenant"]
        print(
            f"valid: tenant {tenant['id']} ({tenant['name']!r}) deleted at "
            f"{payload['deleted_at']}; {len(payload['items'])} item(s); "
            f"signed by {payload['issuer']['key_id']}"
        )
    return EXIT_OK


def public_key_command(args: argparse.Namespace) -> int:
    """``certificate public-key``: the base64 raw Ed25519 public key (not secret)."""
    path = signing_key_path(data_dir(args))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        public_key = public_key_b64(load_or_create_signing_key(path))
    except SecretsError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"public_key": public_key, "algorithm": "Ed25519"})
    else:
        print(public_key, flush=True)
    return EXIT_OK
