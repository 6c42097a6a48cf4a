"""`jobtoken.action` (and `jobtoken.wire`, which it imports) runs with the runner's bare
python3: standard library only.

Each module is imported in a fresh interpreter started with ``-S -I`` (no
site-packages, no user site, no PYTHONPATH): an import of anything outside the
standard library fails there. vermin then checks that the code keeps to the
syntax and standard library of Python 3.10, the oldest runner image's python3.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
ACTION = SRC / "jobtoken" / "action"
WIRE = SRC / "jobtoken" / "wire"
OLDEST_PYTHON = "3.10"


def action_modules() -> list[str]:
    modules = []
    for path in sorted([*ACTION.rglob("*.py"), *WIRE.rglob("*.py")]):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def import_isolated(module: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.path.insert(0, {str(SRC)!r}); import {module}"
    return subprocess.run(
        [sys.executable, "-S", "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_action_package_has_modules_to_check() -> None:
    assert "jobtoken.action" in action_modules()
    assert "jobtoken.wire.grammar" in action_modules()
    assert len(action_modules()) > 1


@pytest.mark.parametrize("module", action_modules())
def test_module_imports_with_the_standard_library_alone(module: str) -> None:
    result = import_isolated(module)
    assert result.returncode == 0, (
        f"{module} must import with the standard library alone "
        f"(python -S -I); it failed:\n{result.stderr}"
    )


def test_the_isolated_import_check_catches_a_third_party_import(tmp_path: Path) -> None:
    """The check above is real: a module importing `yaml` fails it."""
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import yaml\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import probe_pkg"
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


def vermin(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("vermin", path=str(Path(sys.executable).parent))
    assert binary, "vermin is missing: install the test extra (`pip install -e '.[test]'`)"
    return subprocess.run(
        [binary, "--no-tips", "--violations", f"-t={OLDEST_PYTHON}-", "--eval-annotations", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_action_keeps_to_python_3_10() -> None:
    result = vermin(str(ACTION), str(WIRE))
    assert result.returncode == 0, f"the action needs more than Python 3.10:\n{result.stdout}"


def test_the_version_check_catches_newer_features(tmp_path: Path) -> None:
    """The check above is real: a 3.11 module (`tomllib`) is reported. (Not `except*`:
    vermin parses with the interpreter it runs on, and 3.10's parser refuses that.)"""
    probe = tmp_path / "newer.py"
    probe.write_text("import tomllib\n")
    result = vermin(str(probe))
    assert result.returncode != 0
