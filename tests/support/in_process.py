"""The `jobtoken` command run inside the test process, answered as the process would.

:func:`run_cli` calls ``jobtoken.cli.main(argv)`` with ``sys.stdin``, ``sys.stdout`` and
``sys.stderr`` swapped for in-memory streams, and returns a
``subprocess.CompletedProcess`` as ``subprocess.run(..., capture_output=True)`` would:
the exit status (``main``'s answer, or a ``SystemExit``'s, as argparse raises for a
usage error), and what the command wrote to stdout and stderr, as bytes or, with
``text=True``, as text. Log records of WARNING and above are written to stderr as bare
messages, as the logging module's last resort handler does in a process that configures
no logging.

``env`` replaces the whole environment and ``cwd`` the working directory for the call,
as ``subprocess.run``'s arguments of those names do.

It is for the CLI unit tests whose point is what a command does, not the process:
starting ``python -m jobtoken.cli`` costs ~0.7 s (an interpreter and the broker's
imports) every time. An exception the command does not handle is raised, where a
process would print its traceback and exit 1. Tests of the process itself (what
``jobtoken seal`` imports, ``audit tail --follow`` ended by SIGINT) still start one,
and tests/integration runs the installed command.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, overload

from jobtoken.cli import main

__all__ = ["run_cli"]


@overload
def run_cli(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    text: Literal[False] = False,
) -> subprocess.CompletedProcess[bytes]: ...


@overload
def run_cli(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    text: Literal[True],
) -> subprocess.CompletedProcess[str]: ...


def run_cli(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    text: bool = False,
) -> subprocess.CompletedProcess[bytes] | subprocess.CompletedProcess[str]:
    """``jobtoken ARGS`` in this process, fed `stdin` (empty when None)."""
    out, err = io.BytesIO(), io.BytesIO()
    streams = (
        io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True),
    )
    saved = sys.stdin, sys.stdout, sys.stderr
    last_resort = logging.StreamHandler(streams[2])
    last_resort.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(last_resort)
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        with _environment(env), _directory(cwd):
            code = _exit_status(list(args))
        for stream in streams[1:]:
            stream.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        root.removeHandler(last_resort)
    argv = ["jobtoken", *args]
    if text:
        return subprocess.CompletedProcess(argv, code, _text(out), _text(err))
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _directory(cwd: Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    saved = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved)


def _exit_status(args: list[str]) -> int:
    """What ``sys.exit(main(args))`` makes the process's exit status."""
    try:
        return main(args)
    except SystemExit as exited:
        if exited.code is None or isinstance(exited.code, int):
            return exited.code or 0
        print(exited.code, file=sys.stderr)
        return 1


def _text(buffer: io.BytesIO) -> str:
    """The bytes decoded as ``text=True`` does (universal newlines)."""
    return buffer.getvalue().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
