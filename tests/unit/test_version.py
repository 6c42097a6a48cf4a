"""One version number: ``jobtoken.__version__`` is pyproject's (the action's User-Agent
sends it: tests/unit/action/http/test_client.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from jobtoken import __version__

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_package_version_is_pyprojects() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    assert project["version"] == __version__
