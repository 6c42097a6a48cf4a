"""Local stand-ins for trying jobtoken without GitHub. Test-only: not in the wheel.

Run from a clone, after ``make test`` or ``make demo`` created ``.venv``::

    .venv/bin/python tests/support/dev.py oidc-issuer --port 8900 --claims claims.json

``oidc-issuer`` serves a fake runner ID-token endpoint and OIDC issuer on 127.0.0.1
only (it signs whatever it is asked, so it never listens anywhere else). It prints
the issuer URL and the two runner variables a job needs, then serves until
interrupted. ``--claims`` names a JSON object whose keys replace the default claim
of the same name (``support.oidc_issuer.DEFAULT_CLAIMS``: a push to ``main`` of
``octo-org/octo-repo``); the other defaults stay. ``sub`` is derived again from
``repository`` and ``ref`` unless the file sets it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.oidc_issuer import FakeOidcIssuer


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
    issuer.add_argument(
        "--claims",
        type=Path,
        help="JSON object of claims, each replacing the default of that name",
    )
    issuer.add_argument(
        "--lifetime", type=int, default=300, help="ID token life in seconds (default 300)"
    )
    issuer.set_defaults(handler=serve_issuer)
    return parser


def job_claims(overrides: dict[str, Any]) -> dict[str, Any]:
    """The default claims with `overrides` applied, and ``sub`` derived unless given."""
    claims = {**FakeOidcIssuer().claims, **overrides}
    if "sub" not in overrides:
        claims["sub"] = f"repo:{claims.get('repository', '')}:ref:{claims.get('ref', '')}"
    return claims


def serve_issuer(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.claims is not None:
        try:
            loaded = json.loads(args.claims.read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {args.claims}: {exc}", file=sys.stderr)
            return 2
        if not isinstance(loaded, dict):
            print(f"error: {args.claims} must hold a JSON object of claims", file=sys.stderr)
            return 2
        overrides = loaded
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeOidcIssuer(port=args.port, lifetime=args.lifetime) as issuer:
        issuer.claims = job_claims(overrides)
        print(f"issuer: {issuer.url}")
        for name, value in issuer.runner_env().items():
            print(f"{name}={value}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
