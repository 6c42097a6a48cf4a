"""The project as a user gets it: a built wheel (never the source tree) and its
dependencies in a wheelhouse, installed into a fresh virtual environment.

``build_wheelhouse`` runs ``pip wheel`` on the project with the extras asked for: the
jobtoken wheel is built from the tree (not editable) and every dependency comes as a
wheel, from pip's cache when it has one (the same cache the project's ``.venv`` pip
fills) and from the registry otherwise. ``fresh_venv`` makes a new venv and installs a
requirement from that wheelhouse alone (``--no-index``), so a dependency missing from
the wheel's metadata fails the install or the import, as it would for a user. The
container image's build installs from the same wheelhouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 600


def build_wheelhouse(directory: Path, extras: str = "broker,postgres") -> Path:
    """``directory`` holding the jobtoken wheel and a wheel of every dependency."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(directory),
         f"{ROOT}[{extras}]"],
        check=True, capture_output=True, timeout=PIP_TIMEOUT, cwd=directory,
    )  # fmt: skip
    return directory


def project_wheel(wheelhouse: Path) -> Path:
    """The jobtoken wheel in ``wheelhouse``."""
    (wheel,) = wheelhouse.glob("jobtoken-*.whl")
    return wheel


def fresh_venv(directory: Path, wheelhouse: Path, requirement: str) -> Path:
    """A new venv in ``directory`` with ``requirement`` installed from ``wheelhouse`` only."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(directory)], check=True, capture_output=True, timeout=120
    )
    subprocess.run(
        [str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
         "--find-links", str(wheelhouse), requirement],
        check=True, capture_output=True, timeout=PIP_TIMEOUT, env=clean_env(),
    )  # fmt: skip
    return directory


def clean_env() -> dict[str, str]:
    """This process's environment without what would let the source tree leak in."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
