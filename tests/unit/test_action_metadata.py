"""The actions' metadata as the Marketplace reads it, and the examples' `uses:` lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]

#: GitHub's "Exhaustive list of all currently supported icons" for `branding.icon`
#: (Feather v4.28.0 minus the omitted ones: coffee, columns, divide(-circle, -square),
#: frown, hexagon, key, meh, mouse-pointer, smile, tool, x-octagon, and brand icons), from
#: https://docs.github.com/en/actions/sharing-automations/creating-actions/metadata-syntax-for-github-actions#exhaustive-list-of-all-currently-supported-icons
_SUPPORTED_ICON_NAMES = """
    activity airplay alert-circle alert-octagon alert-triangle align-center align-justify
    align-left align-right anchor aperture archive arrow-down-circle arrow-down-left
    arrow-down-right arrow-down arrow-left-circle arrow-left arrow-right-circle arrow-right
    arrow-up-circle arrow-up-left arrow-up-right arrow-up at-sign award bar-chart-2 bar-chart
    battery-charging battery bell-off bell bluetooth bold book-open book bookmark box briefcase
    calendar camera-off camera cast check-circle check-square check chevron-down chevron-left
    chevron-right chevron-up chevrons-down chevrons-left chevrons-right chevrons-up circle
    clipboard clock cloud-drizzle cloud-lightning cloud-off cloud-rain cloud-snow cloud code
    command compass copy corner-down-left corner-down-right corner-left-down corner-left-up
    corner-right-down corner-right-up corner-up-left corner-up-right cpu credit-card crop
    crosshair database delete disc dollar-sign download-cloud download droplet edit-2 edit-3
    edit external-link eye-off eye fast-forward feather file-minus file-plus file-text file
    film filter flag folder-minus folder-plus folder gift git-branch git-commit git-merge
    git-pull-request globe grid hard-drive hash headphones heart help-circle home image inbox
    info italic layers layout life-buoy link-2 link list loader lock log-in log-out mail
    map-pin map maximize-2 maximize menu message-circle message-square mic-off mic minimize-2
    minimize minus-circle minus-square minus monitor moon more-horizontal more-vertical move
    music navigation-2 navigation octagon package paperclip pause-circle pause percent
    phone-call phone-forwarded phone-incoming phone-missed phone-off phone-outgoing phone
    pie-chart play-circle play plus-circle plus-square plus pocket power printer radio
    refresh-ccw refresh-cw repeat rewind rotate-ccw rotate-cw rss save scissors search send
    server settings share-2 share shield-off shield shopping-bag shopping-cart shuffle sidebar
    skip-back skip-forward slash sliders smartphone speaker square star stop-circle sun sunrise
    sunset table tablet tag target terminal thermometer thumbs-down thumbs-up toggle-left
    toggle-right trash-2 trash trending-down trending-up triangle truck tv type umbrella
    underline unlock upload-cloud upload user-check user-minus user-plus user-x user users
    video-off video voicemail volume-1 volume-2 volume-x volume watch wifi-off wifi wind
    x-circle x-square x zap-off zap zoom-in zoom-out
"""
SUPPORTED_ICONS = frozenset(_SUPPORTED_ICON_NAMES.split())
#: `branding.color`, from the same page
SUPPORTED_COLORS = frozenset(
    {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}
)


def test_the_icon_list_is_githubs_and_leaves_out_the_omitted_icons() -> None:
    assert len(SUPPORTED_ICONS) == 257
    assert {"lock", "x-circle"} <= SUPPORTED_ICONS
    assert not {"key", "tool", "x-octagon", "github"} & SUPPORTED_ICONS


@pytest.mark.parametrize("path", ["action.yml", "revoke/action.yml"])
def test_branding_is_an_icon_and_a_color_github_supports(path: str) -> None:
    branding = yaml.safe_load((ROOT / path).read_text())["branding"]
    assert branding["icon"] in SUPPORTED_ICONS
    assert branding["color"] in SUPPORTED_COLORS


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


#: a `uses:` of the action in YAML or prose, ``uses: <owner>/jobtoken[/revoke]@<ref>[ # v1]``
_ACTION_REFERENCE = re.compile(
    r"\buses:\s*[\"']?(?P<owner>[\w<>.-]+)/jobtoken(?P<sub>/revoke)?@(?P<rest>[^\s\"'`]+(?: # v1)?)"
)


def examples_sha() -> str:
    """The one placeholder commit SHA the examples pin (checked above)."""
    (sha,) = {
        match["rest"].removesuffix(" # v1")
        for path in (ROOT / "examples").rglob("*.yml")
        for match in _ACTION_REFERENCE.finditer(path.read_text())
    }
    return sha


def is_the_examples_spelling(reference: re.Match[str], sha: str) -> bool:
    """``owner/jobtoken[/revoke]@<that sha> # v1``, or ``@<sha> # v1`` in prose."""
    return reference["owner"] == "owner" and reference["rest"] in (f"{sha} # v1", "<sha> # v1")


def test_readme_and_docs_write_the_action_as_the_examples_do() -> None:
    sha = examples_sha()
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in _ACTION_REFERENCE.finditer(line):
                found.append(match[0])
                where = f"{path.relative_to(ROOT)}:{number}: {match[0]}"
                assert is_the_examples_spelling(match, sha), where
    assert len(found) >= 5, found


@pytest.mark.parametrize(
    "text",
    [
        "uses: <owner>/jobtoken@v1",
        "uses: owner/jobtoken@v1",
        "uses: <owner>/jobtoken/revoke@<commit-sha> # v1",
        "uses: owner/jobtoken@f2073383ec7573775e15ff88496af56063a77743",
    ],
)
def test_the_spelling_check_refuses_the_old_spellings(text: str) -> None:
    match = _ACTION_REFERENCE.search(text)
    assert match
    assert not is_the_examples_spelling(match, examples_sha())
