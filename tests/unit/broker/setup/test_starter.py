"""``broker init``'s starter: the files, their modes, a config that loads and checks
clean but for ``public_url``, and no overwriting."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from jobtoken.broker.config import load_config
from jobtoken.broker.setup.preflight import PLACEHOLDER_PUBLIC_URL, Finding, preflight
from jobtoken.broker.setup.starter import StarterError, write_starter


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_starter_writes_a_config_keys_and_a_policy_with_private_modes(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "broker"
    written = write_starter(directory)
    names = sorted(str(p.relative_to(directory)) for p in written)
    assert names == [
        "broker.toml",
        "introspection-client.secret",
        "master.key",
        "policies/example-org/example-repo.yml",
    ]
    assert _mode(directory) == 0o700
    assert _mode(directory / "master.key") == 0o600
    assert _mode(directory / "introspection-client.secret") == 0o600
    assert len(base64.b64decode((directory / "master.key").read_text())) == 32
    other = tmp_path / "other"
    write_starter(other)
    assert (other / "master.key").read_text() != (directory / "master.key").read_text()


def test_the_starter_config_checks_clean_but_for_public_url(tmp_path: Path) -> None:
    write_starter(tmp_path / "b")
    config = load_config(tmp_path / "b" / "broker.toml")
    assert config.server.public_url == PLACEHOLDER_PUBLIC_URL
    findings = preflight(config)
    assert [f.level for f in findings] == ["warning"]
    assert "public_url is still the example's" in findings[0].text
    edited = (tmp_path / "b" / "broker.toml").read_text()
    edited = edited.replace(PLACEHOLDER_PUBLIC_URL, "https://tokens.corp.example")
    (tmp_path / "b" / "broker.toml").write_text(edited)
    assert preflight(load_config(tmp_path / "b" / "broker.toml")) == list[Finding]()


@pytest.mark.parametrize("existing", ["a file", "a non-empty directory"])
def test_the_starter_never_overwrites(tmp_path: Path, existing: str) -> None:
    target = tmp_path / "b"
    if existing == "a file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / "master.key").write_text("the key of an earlier broker")
    with pytest.raises(StarterError, match="not an empty directory"):
        write_starter(target)
    if existing != "a file":
        assert (target / "master.key").read_text() == "the key of an earlier broker"
