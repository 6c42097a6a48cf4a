"""The built wheel holds the product and nothing of the test harness."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from support.wheelhouse import project_wheel


@pytest.fixture(scope="module")
def wheel_names(wheelhouse: Path) -> list[str]:
    with zipfile.ZipFile(project_wheel(wheelhouse)) as archive:
        return archive.namelist()


def test_the_wheel_ships_the_product(wheel_names: list[str]) -> None:
    for module in (
        "jobtoken/action/exchange.py",
        "jobtoken/wire/grammar.py",
        "jobtoken/broker/tokens/exchange.py",
        "jobtoken/broker/connectors/templates.toml",  # the provider catalogue: data
        "jobtoken/policy/evaluate.py",
        "jobtoken/cli/__init__.py",
        "jobtoken/py.typed",
    ):
        assert module in wheel_names


def test_the_wheel_holds_no_fake_issuer_or_other_test_harness(wheel_names: list[str]) -> None:
    harness = [
        name
        for name in wheel_names
        if name.startswith(("support/", "tests/", "jobtoken/testing/"))
        or Path(name).name in ("oidc_issuer.py", "fake_broker.py", "demo.py", "dev.py")
    ]
    assert harness == []


def test_the_installed_cli_has_no_dev_commands() -> None:
    from jobtoken.cli import GROUPS

    assert set(GROUPS) == {"broker", "policy"}
