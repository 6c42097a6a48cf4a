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


def test_examples_pin_the_action_by_one_documented_commit_sha() -> None:
    """`owner/jobtoken@<sha> # v1`: a full commit SHA, the version in a comment.

    The SHA is a placeholder the README tells users to replace; the e2e harness
    maps whatever ref a workflow names to the working tree.
    """
    uses = [
        line.split("uses:", 1)[1].strip()
        for path in sorted((ROOT / "examples").rglob("*.yml"))
        for line in path.read_text().splitlines()
        if "uses:" in line and "jobtoken" in line
    ]
    assert uses
    shas = set()
    for value in uses:
        match = re.fullmatch(r"owner/jobtoken(/revoke)?@(?P<sha>[0-9a-f]{40}) # v1", value)
        assert match, value
        shas.add(match["sha"])
    assert len(shas) == 1, shas
    assert shas.pop() in (ROOT / "README.md").read_text()
