"""``jobtoken broker init`` and ``jobtoken broker check``: from nothing to a broker
that starts, and every problem of a config before the first request.

- ``init DIR`` — a starter directory (``broker.starter``): a config needing only
  ``public_url`` edited, a 0600 master key and introspection secret, one commented
  policy; it prints the next three commands;
- ``check --config FILE [--reach-issuers]`` — the start-up checks
  (``broker.preflight``), every finding at once; exit 1 on an error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from jobtoken.broker.config import ConfigError, load_config
from jobtoken.broker.preflight import preflight
from jobtoken.broker.starter import StarterError, write_starter

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
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    print(f"{args.config}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0
