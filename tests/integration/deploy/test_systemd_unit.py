"""deploy/systemd/jobtoken-broker.service passes ``systemd-analyze verify`` and scores
"OK" in ``systemd-analyze security``, and its credentials reach the broker: broker.toml
names them in the service's credentials directory, which the broker reads like any
other secret file."""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.wheelhouse import ROOT

UNIT = ROOT / "deploy" / "systemd" / "jobtoken-broker.service"
CONFIG = ROOT / "deploy" / "systemd" / "broker.toml"
#: what systemd sets $CREDENTIALS_DIRECTORY to for this unit
CREDENTIALS_DIRECTORY = f"/run/credentials/{UNIT.name}"
MAX_EXPOSURE = 2.0  # systemd-analyze security: up to 2.0 is "OK", the best band but one


def _directives() -> list[tuple[str, str]]:
    lines = [line.strip() for line in UNIT.read_text().splitlines()]
    return [
        (key, value)
        for line in lines
        if line and not line.startswith(("#", "["))
        for key, _, value in [line.partition("=")]
    ]


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart on a jobtoken that exists here (verify checks it)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not found: the systemd unit is not verified (Debian: systemd)")
    jobtoken = Path(sys.executable).parent / "jobtoken"
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/jobtoken/bin/jobtoken", str(jobtoken)))
    return copy


def test_systemd_analyze_verify_finds_nothing(unit_copy: Path) -> None:
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(unit_copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == ""  # an unknown or misspelled key is only a warning


def test_the_unit_is_hardened(unit_copy: Path) -> None:
    directives = _directives()
    for expected in (
        ("DynamicUser", "yes"),
        ("StateDirectory", "jobtoken"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ):
        assert expected in directives
    scored = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit_copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if "--offline" in scored.stderr:
        pytest.skip("this systemd-analyze has no security --offline (systemd 250 and newer)")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", scored.stdout)
    assert found, scored.stdout + scored.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, scored.stdout


def test_the_config_reads_each_secret_from_the_units_credentials(tmp_path: Path) -> None:
    credentials = {
        value.split(":", 1)[0] for key, value in _directives() if key == "LoadCredential"
    }
    assert credentials == {"master.key", "introspection-client.secret"}
    text = CONFIG.read_text()
    for name in credentials:
        assert f'"{CREDENTIALS_DIRECTORY}/{name}"' in text

    # the same config, its credentials directory, store and policies moved to tmp_path
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o500)
    (tmp_path / "policies").mkdir()
    for name, value in (
        ("master.key", base64.b64encode(secrets.token_bytes(32)).decode()),
        ("introspection-client.secret", secrets.token_urlsafe(32)),
    ):
        (directory / name).write_text(value)
        (directory / name).chmod(0o400)  # as systemd leaves a credential
    config = tmp_path / "broker.toml"
    config.write_text(
        text.replace(CREDENTIALS_DIRECTORY, str(directory))
        .replace("/var/lib/jobtoken", str(tmp_path))
        .replace("/etc/jobtoken/policies", str(tmp_path / "policies"))
    )
    checked = subprocess.run(
        [sys.executable, "-m", "jobtoken.cli", "broker", "check", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 error(s)" in checked.stdout
    assert "master key" not in checked.stdout  # read and opened
