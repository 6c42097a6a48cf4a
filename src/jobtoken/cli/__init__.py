"""The `jobtoken` command: a thin dispatcher over its command groups.

Each command group is a module of this package (`jobtoken.cli.broker`,
`jobtoken.cli.policy`) that exposes ``register(subparsers)``; each parser sets
``handler`` to a function taking the parsed arguments and returning the exit code.
A single command (`jobtoken seal`) is a module exposing ``configure(parser)``.
Groups and commands are imported lazily so that `jobtoken policy check` and
`jobtoken seal` do not need the broker's libraries; a group whose extra is not
installed (`jobtoken broker` without `jobtoken[broker]`) exits 1 saying which extra to
install, not with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from jobtoken import __version__

#: command group -> (module that registers it, one-line help)
GROUPS: dict[str, tuple[str, str]] = {
    "broker": ("jobtoken.cli.broker", "run and administer the reference broker"),
    "policy": ("jobtoken.cli.policy", "check and explain repository policies"),
}
#: command group -> the package extra whose libraries it needs
EXTRAS: dict[str, str] = {"broker": "broker"}
#: single command -> (module that configures it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "seal": ("jobtoken.cli.seal", "seal a connector credential to a broker's seal key"),
}


class MissingExtra(Exception):
    """A command group's libraries are not installed: the text says which extra to install."""


def _import_group(name: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing, extra = exc.name or "", EXTRAS.get(name)
        if extra is None or missing.partition(".")[0] in ("", "jobtoken"):
            raise  # not a missing extra: a bug
        raise MissingExtra(
            f"jobtoken {name} needs the {extra!r} extra (its library {missing!r} is not "
            f"installed): install jobtoken[{extra}], e.g. pip install 'jobtoken[{extra}]'"
        ) from None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtoken", description="Short-lived, job-scoped connector tokens."
    )
    parser.add_argument("--version", action="version", version=f"jobtoken {__version__}")
    names = [*GROUPS, *COMMANDS]
    groups = parser.add_subparsers(dest="group", metavar="{" + ",".join(names) + "}")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in GROUPS.items():
        group = groups.add_parser(name, help=help_text)
        if name == wanted:
            _import_group(name, module).register(
                group.add_subparsers(dest="command", metavar="COMMAND", required=True)
            )
    for name, (module, help_text) in COMMANDS.items():
        command = groups.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            importlib.import_module(module).configure(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(args_list)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 1
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code: int = handler(args)
    return code
