"""``jobtoken broker init`` and ``jobtoken broker check``: from nothing to a broker
that starts, and every problem of a config before the first request.

- ``init DIR`` — a starter directory (``broker.starter``): a config needing only
  ``public_url`` edited, a 0600 master key and introspection secret, one commented
  policy; it prints the next three commands;
- ``check --config FILE [--reach-issuers]`` — the start-up checks
  (``broker.preflight``), every finding at once, then each policy file ``serve``
  reads and for which repository; exit 1 on an error;
- ``seal-key --config FILE`` — the broker's public seal key (base64, alone on stdout),
  the key pair created on first use and kept in the store sealed under the master key
  (``broker.seal_key``): admins seal connector credentials to it with ``jobtoken seal``.
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sys
from pathlib import Path

from jobtoken.broker.assembly import open_configured_store, open_envelope
from jobtoken.broker.config import ConfigError, load_config
from jobtoken.broker.secrets.seal_keys import SealKeys
from jobtoken.broker.secrets.sealed_file import SealedFileError
from jobtoken.broker.setup.preflight import policies_read, preflight
from jobtoken.broker.setup.starter import StarterError, write_starter
from jobtoken.broker.store import StoreError

__all__ = ["register_setup"]


def register_setup(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = subparsers.add_parser("init", help="write a starter broker directory")
    init.add_argument("directory", type=Path, help="a new (or empty) directory")
    init.set_defaults(handler=_init)

    check = subparsers.add_parser("check", help="check a config, its secrets and policies")
    check.add_argument("--config", type=Path, required=True, help="the broker's TOML config")
    check.add_argument(
        "--reach-issuers",
        action="store_true",
        help="also fetch each trusted issuer's signing keys (network)",
    )
    check.set_defaults(handler=_check)

    seal_key = subparsers.add_parser(
        "seal-key", help="print the public key admins seal connector credentials to"
    )
    seal_key.add_argument("--config", type=Path, required=True, help="the broker's TOML config")
    seal_key.set_defaults(handler=_seal_key)


def _init(args: argparse.Namespace) -> int:
    try:
        written = write_starter(args.directory)
    except StarterError as exc:
        print(f"jobtoken broker: {exc}", file=sys.stderr)
        return 1
    for path in written:
        secret = " (0600, a secret: never commit it)" if path.suffix in (".key", ".secret") else ""
        print(f"wrote {path}{secret}")
    config = shlex.quote(str(args.directory / "broker.toml"))
    print(
        "\nnext:\n"
        f"  1. set public_url in {config} (and make the example policy yours)\n"
        f"  2. jobtoken broker check --config {config}\n"
        f"  3. jobtoken broker serve --config {config}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("1 error (the config must load before anything else is checked)", file=sys.stderr)
        return 1
    findings = preflight(config, reach_issuers=args.reach_issuers)
    for finding in findings:
        print(f"{finding.level}: {finding.text}")
    for path, repository in policies_read(config).read.items():
        print(f"reads: {path} as the policy of {repository}")
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    print(f"{args.config}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _seal_key(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        envelope = open_envelope(config)
        store = open_configured_store(config)
    except ConfigError as exc:
        print(f"jobtoken broker: {exc}", file=sys.stderr)
        return 1
    try:
        created = not store.seal_keys()
        key_id, public_key = SealKeys(store, envelope).ensure_current()
    except (SealedFileError, StoreError) as exc:
        print(f"jobtoken broker: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(base64.b64encode(public_key).decode("ascii"))
    state = "created now" if created else "the current one"
    print(
        f"seal key {key_id} ({state}; its private key is in the store, sealed under "
        f"{envelope.current.key_id}). Seal a credential to it on any machine with:\n"
        "  jobtoken seal --key KEY --input - --output connector.sealed\n"
        "then commit the file and name it in the connector's table: credential_sealed_file = "
        '"connector.sealed"',
        file=sys.stderr,
    )
    return 0
