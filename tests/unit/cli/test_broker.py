"""``jobtoken broker …`` admin commands, run in this process (``support.in_process``):
what a command does, not the process, which tests/integration starts."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.in_process import run_cli


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_cli(["broker", *args], stdin=stdin)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    path = tmp_path / "broker.toml"
    path.write_text(
        '[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n'
        '[connectors.contacts]\nbase_url = "https://api.example.com"\n'
    )
    return path


def test_connector_set_reads_stdin_and_stores_the_credential_sealed(config: Path) -> None:
    done = _run("connector", "set", "contacts", "--config", str(config), "--credential-file", "-",
                stdin=b"ck_live_SECRET\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"stored the credential of connector contacts" in done.stdout
    db = b"".join(p.read_bytes() for p in config.parent.glob("b.db*"))
    assert b"ck_live_SECRET" not in db
    assert b"ck_live_SECRET" not in done.stdout + done.stderr


def test_connector_set_reads_a_file(config: Path) -> None:
    (config.parent / "cred").write_text("abc")
    done = _run("connector", "set", "contacts", "--config", str(config),
                "--credential-file", str(config.parent / "cred"))  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_connector_set_has_no_way_to_take_the_credential_from_argv(config: Path) -> None:
    done = _run("connector", "set", "contacts", "--config", str(config), "--credential", "abc")
    assert done.returncode == 2
    assert b"abc" not in done.stdout


def test_connector_set_refuses_an_unconfigured_connector(config: Path) -> None:
    done = _run("connector", "set", "other", "--config", str(config), "--credential-file", "-",
                stdin=b"x")  # fmt: skip
    assert done.returncode == 1
    assert b"not in [connectors]" in done.stderr


def test_connector_set_refuses_an_empty_credential(config: Path) -> None:
    done = _run("connector", "set", "contacts", "--config", str(config), "--credential-file", "-",
                stdin=b"\n")  # fmt: skip
    assert done.returncode == 1
    assert b"empty" in done.stderr


def test_a_missing_master_key_is_reported_with_what_to_set(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[connectors.contacts]\n")
    done = _run("rotate-signing-key", "--config", str(path))
    assert done.returncode == 1
    assert b"master_key_file or master_key_env" in done.stderr


def test_serve_refuses_a_broken_config_before_listening(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("[server]\nunknown = 1\n")
    done = _run("serve", "--config", str(path))
    assert done.returncode == 1
    assert b"unknown key 'unknown'" in done.stderr


def test_migrate_upgrades_a_first_release_store_once(config: Path) -> None:
    import sqlite3

    from jobtoken.broker.store.schema import LATEST_VERSION, MIGRATIONS

    conn = sqlite3.connect(config.parent / "b.db")
    conn.executescript(MIGRATIONS[0].statements.format(blob="BLOB"))
    conn.close()
    refused = _run("audit", "verify", "--config", str(config))
    assert refused.returncode == 1
    assert b"run `jobtoken broker migrate --config FILE` first" in refused.stderr
    done = _run("migrate", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"store schema now at version {LATEST_VERSION}".encode() in done.stdout
    assert b"applied migration 2: ended jobs, webhook deliveries, expiry indexes" in done.stdout
    again = _run("migrate", "--config", str(config))
    assert f"store schema already at version {LATEST_VERSION}".encode() in again.stdout
    assert _run("audit", "verify", "--config", str(config)).returncode == 0


def test_rotate_master_key_rewraps_the_seal_key_and_sealed_files_still_open(
    tmp_path: Path,
) -> None:
    from jobtoken.broker.secrets.envelope import Envelope, MasterKey
    from jobtoken.broker.store import open_store

    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    (tmp_path / "master.key").write_text(old)
    (tmp_path / "policies").mkdir()
    config = tmp_path / "broker.toml"
    connector = '[connectors.api]\ncredential_sealed_file = "api.sealed"\n'
    config.write_text(
        f'[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n{connector}'
    )
    public = _run("seal-key", "--config", str(config)).stdout.decode().strip()
    sealed = run_cli(
        ["seal", "--key", public, "--output", str(tmp_path / "api.sealed")],
        stdin=b"sk_live_ROTATE",
    )
    assert sealed.returncode == 0, sealed.stderr

    (tmp_path / "old.key").write_text(old)
    (tmp_path / "master.key").write_text(new)
    config.write_text(
        '[keys]\nmaster_key_file = "master.key"\nprevious_master_key_files = ["old.key"]\n'
        f'[store]\npath = "b.db"\n{connector}'
    )
    rotated = _run("rotate-master-key", "--config", str(config))
    assert rotated.returncode == 0, rotated.stderr
    new_id = MasterKey.from_text(new, origin="t").key_id
    store = open_store("sqlite", path=tmp_path / "b.db")
    (row,) = store.seal_keys()
    store.close()
    assert Envelope(MasterKey.from_text(new, origin="t")).key_id_of(row.sealed) == new_id

    config.write_text(
        f'[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n{connector}'
    )
    check = _run("check", "--config", str(config))
    assert b"connector api" not in check.stdout, check.stdout  # opens without the old key
    assert _run("seal-key", "--config", str(config)).stdout.decode().strip() == public


@pytest.mark.parametrize("args", [["broker", "--help"], ["broker", "check", "--config", "x"]])
def test_without_the_broker_extra_broker_says_which_extra_to_install(args: list[str]) -> None:
    # a base install: `requests` (a library of the broker extra only) cannot be imported
    program = (
        "import sys\nsys.modules['requests'] = None\nfrom jobtoken.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr
    assert b"install jobtoken[broker]" in done.stderr
    assert b"'requests' is not installed" in done.stderr


def test_connector_list_says_a_connector_that_needs_no_credential_needs_none(
    config: Path,
) -> None:
    config.write_text(config.read_text() + '[connectors.verified-by-jwks]\nkind = "minted"\n')
    done = _run("connector", "list", "--config", str(config))
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.decode().splitlines()[1:]}
    assert rows["verified-by-jwks"][3:5] == ["not", "needed"]
    assert rows["contacts"][3] == "no"  # it proxies to base_url: its credential is missing
    listed = _run("connector", "list", "--config", str(config), "--json")
    needed = {
        row["name"]: (row["credential_needed"], row["credential_set"])
        for row in map(json.loads, listed.stdout.decode().splitlines())
    }
    assert needed == {"contacts": (True, False), "verified-by-jwks": (False, False)}
