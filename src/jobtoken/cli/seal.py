"""``jobtoken seal --key KEY [--input FILE|-] [--output FILE]``: seal a connector
credential to a broker's public seal key (``jobtoken broker seal-key`` prints it), on
any machine, for a broker config kept in a repository.

The output is a sealed credential file (``broker.credential_box``): only the broker
holding the private key opens it, so it can be committed. The credential is read from
a file or stdin (default), never from argv; nothing prints it. Needs PyNaCl and the
standard library only (a plain ``pip install jobtoken``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobtoken.broker.secrets.sealed_file import (
    SealedFileError,
    parse_public_key,
    seal_credential,
    seal_key_id,
)
from jobtoken.cli.secret_input import read_secret_file

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        required=True,
        metavar="KEY",
        help="the broker's seal key, as `jobtoken broker seal-key --config FILE` prints it",
    )
    parser.add_argument(
        "--input",
        default="-",
        metavar="FILE|-",
        help="file holding the credential (API key, client secret or app key); - for stdin",
    )
    parser.add_argument(
        "--output", type=Path, help="the sealed credential file to write (default: stdout)"
    )
    parser.set_defaults(handler=_seal)


def _seal(args: argparse.Namespace) -> int:
    try:
        public_key = parse_public_key(args.key)
        text = seal_credential(read_secret_file(args.input), public_key)
        if args.output is None:
            sys.stdout.write(text)
        else:
            _write_new(args.output, text)
    except (SealedFileError, ValueError) as exc:
        print(f"jobtoken seal: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"jobtoken seal: {exc.filename or args.input}: {exc.strerror}", file=sys.stderr)
        return 1
    where = "" if args.output is None else f" to {args.output}"
    print(
        f"sealed the credential{where} for seal key {seal_key_id(public_key)}; only that "
        "broker opens it: commit the file and name it in the connector's table "
        '(credential_sealed_file = "…")',
        file=sys.stderr,
    )
    return 0


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a new file renamed into place."""
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(temporary, "x", encoding="ascii") as out:
        out.write(text)
    os.replace(temporary, path)
