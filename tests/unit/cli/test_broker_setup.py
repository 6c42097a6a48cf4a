"""``jobtoken broker init``, ``check`` and ``seal-key``, run in this process
(``support.in_process``)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from support.in_process import run_cli


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["broker", *args], text=True)


def test_init_writes_the_starter_and_names_the_next_three_commands(tmp_path: Path) -> None:
    done = _run("init", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    config = tmp_path / "b" / "broker.toml"
    assert f"1. set public_url in {config}" in done.stdout
    assert f"2. jobtoken broker check --config {config}" in done.stdout
    assert f"3. jobtoken broker serve --config {config}" in done.stdout
    key = (tmp_path / "b" / "master.key").read_text().strip()
    assert key not in done.stdout + done.stderr  # the secret is written, never printed
    assert stat.S_IMODE((tmp_path / "b" / "master.key").stat().st_mode) == 0o600
    again = _run("init", str(tmp_path / "b"))
    assert again.returncode == 1
    assert "not an empty directory" in again.stderr
    assert (tmp_path / "b" / "master.key").read_text().strip() == key


def test_check_passes_the_starter_with_its_one_warning(tmp_path: Path) -> None:
    _run("init", str(tmp_path / "b"))
    done = _run("check", "--config", str(tmp_path / "b" / "broker.toml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("warning: server.public_url is still the example's")
    assert done.stdout.rstrip().endswith("0 error(s), 1 warning(s)")


def test_check_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    _run("init", str(tmp_path / "b"))
    (tmp_path / "b" / "master.key").unlink()
    (tmp_path / "b" / "introspection-client.secret").unlink()
    done = _run("check", "--config", str(tmp_path / "b" / "broker.toml"))
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if not line.startswith("reads: ")]
    assert [line.split(":")[0] for line in lines[:-1]] == ["error", "error", "warning"]
    assert "master key" in lines[0]
    assert "introspection client resource-server" in lines[1]
    assert lines[-1].endswith("2 error(s), 1 warning(s)")


def test_check_names_the_policy_files_serve_never_reads_and_lists_those_it_does(
    tmp_path: Path,
) -> None:
    _run("init", str(tmp_path / "b"))
    policies = tmp_path / "b" / "policies"
    example = (policies / "example-org" / "example-repo.yml").read_text()
    (policies / "octo-org").mkdir()
    (policies / "octo-org" / "Octo-Repo.yml").write_text(
        example.replace("example-org/example-repo", "octo-org/Octo-Repo")
    )
    (policies / "octo-org" / "wrongname.yml").write_text(
        example.replace("example-org/example-repo", "octo-org/app")
    )
    done = _run("check", "--config", str(tmp_path / "b" / "broker.toml"))
    assert done.returncode == 1, done.stdout
    assert (
        f"error: policy: {policies / 'octo-org' / 'Octo-Repo.yml'} is never read: the broker "
        "reads only lower-case paths: rename it to octo-org/octo-repo.yml"
    ) in done.stdout
    assert (
        f"error: policy: {policies / 'octo-org' / 'wrongname.yml'} names the repository "
        "octo-org/app, but the broker reads it only for octo-org/wrongname (its path)"
    ) in done.stdout
    reads = [line for line in done.stdout.splitlines() if line.startswith("reads: ")]
    assert reads == [
        f"reads: {policies / 'example-org' / 'example-repo.yml'} as the policy of "
        "example-org/example-repo",
        f"reads: {policies / 'octo-org' / 'wrongname.yml'} as the policy of octo-org/wrongname",
    ]
    assert done.stdout.rstrip().endswith("2 error(s), 1 warning(s)")


def test_check_of_a_config_that_does_not_load_names_its_error(tmp_path: Path) -> None:
    (tmp_path / "broker.toml").write_text("[server]\nprot = 1\n")
    done = _run("check", "--config", str(tmp_path / "broker.toml"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "prot" in done.stderr


def test_seal_key_creates_the_key_pair_once_and_prints_only_the_public_key(
    tmp_path: Path,
) -> None:
    import base64

    _run("init", str(tmp_path / "b"))
    config = str(tmp_path / "b" / "broker.toml")
    first = _run("seal-key", "--config", config)
    assert first.returncode == 0, first.stderr
    public = first.stdout.strip()
    assert len(base64.b64decode(public, validate=True)) == 32
    assert first.stdout == public + "\n"  # stdout is the key alone: KEY=$(… seal-key …)
    assert "created now" in first.stderr
    assert "jobtoken seal --key" in first.stderr
    again = _run("seal-key", "--config", config)
    assert again.stdout == first.stdout
    assert "the current one" in again.stderr


def test_seal_key_without_a_master_key_says_what_to_set(tmp_path: Path) -> None:
    (tmp_path / "broker.toml").write_text('[store]\npath = "b.db"\n')
    done = _run("seal-key", "--config", str(tmp_path / "broker.toml"))
    assert done.returncode == 1
    assert "master_key_file" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[connectors.my.api]\nbase_url = "https://api.corp.example"\n',
            "[connectors.my] unknown table [connectors.my.api]; a connector name cannot "
            "contain '.': for a connector named my.api, write [connectors.my-api]",
        ),
        ("[oidcc]\nissuers = []\n", "unknown table [oidcc]; did you mean [oidc]?"),
        ("[server]\nprot = 1\n", "[server] unknown key 'prot'; did you mean 'port'?"),
    ],
)
def test_check_names_an_unknown_table_or_key_with_what_was_meant(
    tmp_path: Path, toml: str, message: str
) -> None:
    (tmp_path / "broker.toml").write_text(toml)
    done = _run("check", "--config", str(tmp_path / "broker.toml"))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {tmp_path / 'broker.toml'}: {message}\n")
