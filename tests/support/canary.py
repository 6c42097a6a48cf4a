"""The leak canary's tools (tests/e2e/test_leak_canary.py): capture every file a job's
steps wrote, take out the values that are meant to be there, and keep the figures.

Capturing the files: the runner gives each step fresh ``GITHUB_OUTPUT``, ``GITHUB_ENV``,
``GITHUB_STATE``, ``GITHUB_PATH`` and ``GITHUB_STEP_SUMMARY`` files and reads them when the
step ends, so nothing is left to read after the job. The canary's first step puts a
``python3`` on the job's ``PATH`` (through ``GITHUB_PATH``) that runs the real one and then
copies those five files into a directory of the test's. Both actions run ``python3``, so
every file they wrote is captured as it was when their step ended; the action itself is
not changed, and nothing is printed.

What is meant to be there: the exchange action's ``token`` output (the token, by design)
and ``revoke-handle`` (masked; for Vault it carries the Vault token the revoke action
needs). :func:`without_intended` removes exactly those entries with exactly those values
from ``GITHUB_OUTPUT``, and the rest of the file is scanned like every other place.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from support.leak_check import assert_nothing_leaked, encodings

FILE_COMMANDS = (
    "GITHUB_OUTPUT",
    "GITHUB_ENV",
    "GITHUB_STATE",
    "GITHUB_PATH",
    "GITHUB_STEP_SUMMARY",
)

#: the workflow's first step (inputs through env:, no expression in run:), as a mapping
#: and as the YAML text of a step of a job's ``steps:``
CAPTURE: dict[str, object] = {
    "id": "canary-capture",
    "shell": "bash",
    "env": {"CANARY_BIN": "${{ env.CANARY_BIN }}"},
    "run": 'echo "$CANARY_BIN" >> "$GITHUB_PATH"',
}
CAPTURE_STEP = """\
      - id: canary-capture
        shell: bash
        env: { CANARY_BIN: "${{ env.CANARY_BIN }}" }
        run: echo "$CANARY_BIN" >> "$GITHUB_PATH"
"""


def runner_python() -> str:
    """The ``python3`` a job finds on this host (not this virtualenv's: see support.act)."""
    venv = sys.prefix if sys.prefix != sys.base_prefix else ""
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    kept = os.pathsep.join(p for p in path if not (venv and p.startswith(venv)))
    found = shutil.which("python3", path=kept)
    assert found, "no python3 on PATH outside the virtualenv"
    return found


def install_capture(directory: Path) -> dict[str, str]:
    """Write the capturing ``python3`` under ``directory``; the env the workflow needs."""
    bin_dir, files = directory / "bin", directory / "files"
    bin_dir.mkdir(parents=True)
    files.mkdir()
    copies = "\n".join(
        f'[ -n "${{{name}:-}}" ] && [ -f "${name}" ] && cp "${name}" "{files}/$n-$step-{name}"'
        for name in FILE_COMMANDS
    )
    shim = bin_dir / "python3"
    shim.write_text(
        "#!/bin/bash\n"
        f'"{runner_python()}" "$@"\n'
        "rc=$?\n"
        "n=$(date +%s%N)\n"
        'step="${GITHUB_ACTION:-step}"; step="${step//[^A-Za-z0-9_.-]/_}"\n'
        f"{copies}\n"
        "exit $rc\n"
    )
    shim.chmod(0o755)
    return {"CANARY_BIN": str(bin_dir)}


def captured_files(directory: Path) -> dict[str, bytes]:
    """Every captured file, by name (``<time>-GITHUB_OUTPUT``…), empty ones included."""
    return {p.name: p.read_bytes() for p in sorted((directory / "files").iterdir())}


def without_intended(content: bytes, intended: Mapping[str, str]) -> tuple[bytes, int]:
    """``GITHUB_OUTPUT`` text without the ``name<<D`` entries whose name and value are
    in ``intended``; and how many were taken out. Anything else stays, to be scanned."""
    lines = content.decode("utf-8", "surrogateescape").split("\n")
    kept: list[str] = []
    removed = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        name, sep, delimiter = line.partition("<<")
        if sep and delimiter and delimiter in lines[index + 1 :]:
            end = lines.index(delimiter, index + 1)
            value = "\n".join(lines[index + 1 : end])
            if name in intended and intended[name] == value:
                removed += 1
                index = end + 1
                continue
        kept.append(line)
        index += 1
    return "\n".join(kept).encode("utf-8", "surrogateescape"), removed


@dataclass
class Tally:
    """The canary's figures, over every scan of the module."""

    lines: list[str] = field(default_factory=list)
    places: int = 0
    secrets: int = 0
    forms: int = 0
    checks: int = 0
    bytes_scanned: int = 0

    def scan(self, what: str, places: dict[str, bytes], secrets: Iterable[str]) -> int:
        """Assert no form of any secret is in any place; record and print the figures."""
        unique = sorted({s for s in secrets if s})
        forms = sum(len(encodings(s)) for s in unique)
        checks = assert_nothing_leaked(places, unique)
        assert checks == len(places) * forms
        size = sum(len(c) for c in places.values())
        line = (
            f"{what}: {len(places)} places ({size:,} bytes) x {len(unique)} secrets "
            f"({forms} forms) = {checks:,} checks, found 0"
        )
        print(line)
        for place, content in places.items():
            print(f"    {place}: {len(content):,} bytes")
        self.lines.append(line)
        self.places += len(places)
        self.secrets += len(unique)
        self.forms += forms
        self.checks += checks
        self.bytes_scanned += size
        return checks

    def summary(self) -> list[str]:
        return [
            "leak canary (ACTIONS_STEP_DEBUG=true, RUNNER_DEBUG=1):",
            *(f"  {line}" for line in self.lines),
            f"  total: {self.places} places, {self.secrets} secrets, {self.forms} "
            f"(secret, form) pairs, {self.checks:,} checks over {self.bytes_scanned:,} "
            "bytes, found 0",
        ]
