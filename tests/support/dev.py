"""Local stand-ins for trying jobtoken without GitHub. Test-only: not in the wheel.

Run from a clone, after ``make test`` or ``make demo`` created ``.venv``::

    .venv/bin/python tests/support/dev.py oidc-issuer --port 8800 --claims claims.json
    .venv/bin/python tests/support/dev.py act .github/workflows/sync.yml --issuer-port 8800

``oidc-issuer`` serves a fake runner ID-token endpoint and OIDC issuer on 127.0.0.1
only (it signs whatever it is asked, so it never listens anywhere else). It prints
the issuer URL and the two runner variables a job needs, then serves until
interrupted. ``act`` starts the same issuer and runs a workflow with act on this
host, the action mapped from a copy of this clone (``support.local_act``).

``--claims`` names a JSON object merged into the default claims key by key
(``support.oidc_issuer.DEFAULT_CLAIMS``: a push to ``main`` of
``octo-org/octo-repo``): a key replaces the default of that name, ``null``
removes the claim, the other defaults stay. ``sub`` is derived again, in
GitHub's default format, unless the file sets it: ``repo:R:environment:E`` with
an ``environment``, ``repo:R:pull_request`` for a ``pull_request`` event, else
``repo:R:ref:REF``. Nothing else is derived (``workflow_ref`` still names the
default ref, for example). ``--key-file`` keeps the signing key (and so its
``kid``) across restarts; without it each start makes a new key, which a running
broker refuses until it refetches the issuer's keys (at most once a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if __package__ in (None, ""):  # run as a script: make `support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.oidc_issuer import DEFAULT_CLAIMS, FakeOidcIssuer

#: the issuer's port for `act` unless told: fixed, so a broker config can trust it
DEFAULT_ACT_ISSUER_PORT = 8800


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tests/support/dev.py", description="test-only local stand-ins for jobtoken"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    issuer = commands.add_parser(
        "oidc-issuer",
        help="serve a fake GitHub Actions OIDC issuer on 127.0.0.1",
        description=(
            "Serve a fake runner ID-token endpoint and OIDC issuer on 127.0.0.1. "
            "Prints the two runner variables a job needs, then serves until "
            "interrupted. For tests and demos only: it signs whatever it is asked."
        ),
    )
    issuer.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    _issuer_options(issuer)
    issuer.set_defaults(handler=serve_issuer)

    act = commands.add_parser(
        "act",
        help="run a workflow with act here, with the fake issuer and this clone's action",
        description=(
            "Start the fake issuer, then run WORKFLOW with act on this host (no Docker), "
            "every `uses: <owner>/jobtoken@REF` (and /revoke) mapped to a copy of what the "
            "action ships from this clone (no .venv). act ignores `permissions:`: a job "
            "without `id-token: write` gets an ID token here but not on GitHub (warned)."
        ),
    )
    act.add_argument("workflow", type=Path, help="the workflow file, inside --repo")
    act.add_argument(
        "--repo", type=Path, default=Path(), help="the repository the job runs in (default: .)"
    )
    act.add_argument(
        "--issuer-port",
        type=int,
        default=DEFAULT_ACT_ISSUER_PORT,
        help=f"the issuer's port (default {DEFAULT_ACT_ISSUER_PORT}; 0: a free one)",
    )
    _issuer_options(act)
    act.add_argument("--event", default="push", help="the event to run (default push)")
    for option, what in (("--env", "job variable"), ("--var", "`vars.`"), ("--secret", "secret")):
        act.add_argument(
            option, action="append", default=[], metavar="NAME=VALUE", help=f"a {what}; repeat"
        )
    act.add_argument(
        "--action-repository",
        default="jobtoken",
        metavar="NAME",
        help="the action's repository as the workflow names it: jobtoken (any owner, the "
        "default) or OWNER/NAME",
    )
    act.add_argument("act_args", nargs="*", metavar="-- ACT_ARG", help="passed to act as is")
    act.set_defaults(handler=run_act)
    return parser


def _issuer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--claims",
        type=Path,
        help="JSON object merged into the default claims key by key (null removes one); "
        "sub is derived again unless it is given",
    )
    parser.add_argument(
        "--lifetime", type=int, default=300, help="ID token life in seconds (default 300)"
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        help="PEM signing key to keep across restarts (created, mode 0600, when missing)",
    )


def job_claims(overrides: dict[str, Any]) -> dict[str, Any]:
    """The default claims merged with `overrides` key by key (None removes one).

    ``sub`` is derived again in GitHub's default format unless `overrides` sets it.
    """
    claims = {**DEFAULT_CLAIMS, **overrides}
    claims = {name: value for name, value in claims.items() if value is not None}
    if "sub" not in overrides:
        repository = claims.get("repository", "")
        if claims.get("environment"):
            claims["sub"] = f"repo:{repository}:environment:{claims['environment']}"
        elif claims.get("event_name") in ("pull_request", "pull_request_target"):
            claims["sub"] = f"repo:{repository}:pull_request"
        else:
            claims["sub"] = f"repo:{repository}:ref:{claims.get('ref', '')}"
    return claims


def signing_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key in `path`, or a new one written there (mode 0600) when it is missing."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key


def key_id(key: rsa.RSAPrivateKey) -> str:
    """A `kid` that stays the same for the same key (SHA-256 of the public key)."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(public).hexdigest()[:32]


class UsageError(Exception):
    """A bad option value: printed as ``error: …``, exit status 2."""


def read_claims(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"{path} must hold a JSON object of claims")
    return loaded


@contextlib.contextmanager
def started_issuer(args: argparse.Namespace, port: int) -> Iterator[FakeOidcIssuer]:
    """The fake issuer the options describe, serving until the block ends."""
    claims = job_claims(read_claims(args.claims))
    issuer = FakeOidcIssuer(port=port, lifetime=args.lifetime, claims=claims)
    if args.key_file is not None:
        try:
            issuer.private_key = signing_key(args.key_file)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot use the key file {args.key_file}: {exc}") from None
        issuer.kid = key_id(issuer.private_key)
    with issuer:
        yield issuer


def pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a mapping."""
    result = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise UsageError(f"{option} takes NAME=VALUE, not {value!r}")
        result[name] = text
    return result


def serve_issuer(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with started_issuer(args, args.port) as issuer:
        print(f"issuer: {issuer.url}")
        for name, value in issuer.runner_env().items():
            print(f"{name}={value}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def run_act(args: argparse.Namespace) -> int:
    from support.local_act import ACT_IGNORES_PERMISSIONS, permission_warnings, run_local

    workflow = args.workflow if args.workflow.is_absolute() else args.repo / args.workflow
    if not workflow.is_file():
        workflow = args.workflow  # given relative to the current directory
    try:
        text = workflow.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the workflow {args.workflow}: {exc}") from None
    env = pairs(args.env, "--env")
    variables, secrets = pairs(args.var, "--var"), pairs(args.secret, "--secret")
    print(ACT_IGNORES_PERMISSIONS, file=sys.stderr)
    for warning in permission_warnings(text, args.action_repository):
        print(warning, file=sys.stderr)
    with started_issuer(args, args.issuer_port) as issuer:
        print(f"issuer: {issuer.url}", file=sys.stderr)
        sys.stderr.flush()
        return run_local(
            workflow,
            repo=args.repo,
            issuer=issuer,
            event_name=args.event,
            env=env,
            variables=variables,
            secrets=secrets,
            repository_name=args.action_repository,
            extra_args=args.act_args,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
