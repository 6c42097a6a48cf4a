"""The actions' metadata as the Marketplace reads it, and the examples' `uses:` lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]

#: a part of GitHub's supported branding icons (Feather v4.28.0 minus the ones GitHub
#: omits, such as `key`); enough for what an action about tokens would pick
SUPPORTED_ICONS = frozenset(
    {"lock", "unlock", "shield", "shield-off", "x-circle", "check-circle", "log-out", "trash-2"}
)


@pytest.mark.parametrize("path", ["action.yml", "revoke/action.yml"])
def test_branding_icon_is_one_github_supports(path: str) -> None:
    metadata = yaml.safe_load((ROOT / path).read_text())
    assert metadata["branding"]["icon"] in SUPPORTED_ICONS


def test_examples_use_one_spelling_of_the_action() -> None:
    uses = [
        line.split("uses:", 1)[1].strip()
        for path in sorted((ROOT / "examples").rglob("*.yml"))
        for line in path.read_text().splitlines()
        if "uses:" in line and "jobtoken" in line
    ]
    assert uses
    for value in uses:
        assert re.fullmatch(r"owner/jobtoken(/revoke)?@v1", value), value
