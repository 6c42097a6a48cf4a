"""``jobtoken broker init DIR``: a working starter broker in one directory.

It writes a config that needs only ``public_url`` edited, a fresh master key and an
introspection client secret (both 0600, from :mod:`secrets`), and a policy
directory with one commented example. It refuses a directory that is not empty, so
it never overwrites a key. No secret is printed; the config names the files.

Public API: :func:`write_starter`, :class:`StarterError`.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from jobtoken.broker.errors import BrokerFailure
from jobtoken.broker.setup.preflight import PLACEHOLDER_PUBLIC_URL

__all__ = ["StarterError", "write_starter"]

CONFIG = f"""\
# jobtoken broker: the starter that `jobtoken broker init` wrote. Every key, with
# its default and what it does: examples/broker/broker.toml in the jobtoken
# repository, and docs/broker.md. Secrets are never in this file: it names files.

[server]
host = "127.0.0.1"            # put a TLS-terminating reverse proxy in front
port = 8080
# EDIT: the https URL jobs reach this broker at. It is the `iss` of the tokens it
# mints and the audience jobs request their ID token for (the action's
# `audience` input defaults to the broker URL).
public_url = "{PLACEHOLDER_PUBLIC_URL}"

[store]
path = "broker.db"            # SQLite, created 0600; [store] kind = "postgres" to scale out

[keys]
# Seals connector credentials and signing keys at rest. Back it up: without it the
# store's sealed secrets cannot be opened.
master_key_file = "master.key"

[oidc]
issuers = ["https://token.actions.githubusercontent.com"]

# Who may call POST /introspect (HTTP Basic: this id and the secret in the file).
[[introspection_clients]]
id = "resource-server"
secret_file = "introspection-client.secret"
role = "resource-server"

[policy]
directory = "policies"        # policies/<owner>/<repository>.yml, lower case

# A connector whose tokens an API verifies itself, through the broker's JWKS
# (GET /.well-known/jwks.json). To proxy calls to an upstream API instead, add
# base_url and routes, and store its credential:
#   jobtoken broker connector set example --config broker.toml --credential-file -
[connectors.example]
kind = "minted"
scopes = ["example.read"]
max_ttl_seconds = 900
"""

POLICY = """\
# Which jobs of ONE repository may get which connector tokens. Rename this file to
# policies/<owner>/<repository>.yml (lower case) and set both fields below from
#   gh api repos/OWNER/NAME --jq '.full_name, .id'
# Check it with: jobtoken policy check policies/<owner>/<repository>.yml
version: 1
repository: example-org/example-repo
repository_id: "1"            # the repository's id, as a string: it survives renames

connectors:
  example:
    - name: read-from-main
      scopes: [example.read]
      max_ttl: 15m
      when:                     # every condition must hold
        ref: refs/heads/main
        event_name: [push, workflow_dispatch]
"""

POLICY_PATH = Path("policies") / "example-org" / "example-repo.yml"


class StarterError(BrokerFailure):
    """The directory cannot take a starter (not empty, or not writable)."""


def write_starter(directory: Path) -> list[Path]:
    """Write the starter into ``directory`` (created 0700 if missing); the files written."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise StarterError(f"{directory} exists and is not an empty directory: choose a new one")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        written = [
            _write(directory / "broker.toml", CONFIG, 0o644),
            _write(
                directory / "master.key",
                base64.b64encode(secrets.token_bytes(32)).decode() + "\n",
                0o600,
            ),
            _write(
                directory / "introspection-client.secret", secrets.token_urlsafe(32) + "\n", 0o600
            ),
        ]
        (directory / POLICY_PATH).parent.mkdir(parents=True)
        written.append(_write(directory / POLICY_PATH, POLICY, 0o644))
    except OSError as exc:
        raise StarterError(f"cannot write the starter in {directory}: {exc.strerror}") from None
    return written


def _write(path: Path, text: str, mode: int) -> Path:
    """Create ``path`` with ``mode`` from the start (a secret is never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path
