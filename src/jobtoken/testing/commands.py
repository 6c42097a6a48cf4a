"""`jobtoken dev …`: local stand-ins for trying jobtoken without GitHub."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from jobtoken.testing.oidc_issuer import FakeOidcIssuer


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    issuer = commands.add_parser(
        "oidc-issuer",
        help="serve a fake GitHub Actions OIDC issuer on loopback",
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
        help="JSON file of claims that replace the defaults (repository, ref, …)",
    )
    issuer.add_argument(
        "--lifetime", type=int, default=300, help="ID token life in seconds (default 300)"
    )
    issuer.set_defaults(handler=serve_issuer)


def serve_issuer(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.claims is not None:
        loaded = json.loads(args.claims.read_text())
        if not isinstance(loaded, dict):
            print(f"error: {args.claims} must hold a JSON object of claims", file=sys.stderr)
            return 2
        overrides = loaded
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeOidcIssuer(port=args.port, lifetime=args.lifetime) as issuer:
        issuer.claims.update(overrides)
        print(f"issuer: {issuer.url}")
        for name, value in issuer.runner_env().items():
            print(f"{name}={value}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
