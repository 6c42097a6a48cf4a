"""A copy of just what the action ships (action.yml, revoke/, src/jobtoken/action),
for act's ``--local-repository``: act copies the whole folder it is given, and
the working tree's .venv would make every run take tens of seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

from jobtoken.testing.act import PROJECT_ROOT

SHIPPED = ("action.yml", "revoke/action.yml", "src/jobtoken/__init__.py", "src/jobtoken/action")


def copy_action_tree(destination: Path) -> Path:
    for relative in SHIPPED:
        source = PROJECT_ROOT / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return destination
