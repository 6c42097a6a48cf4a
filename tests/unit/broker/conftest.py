"""Broker test fixtures: a throwaway PostgreSQL 15 cluster, and a real broker process
(``jobtoken broker serve``) on a free loopback port with a fake OIDC issuer, a contacts
API as its upstream connector, and every secret in files of a temp dir."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from jobtoken.testing.contacts_api import ContactsApi
from jobtoken.testing.oidc_issuer import FakeOidcIssuer

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO = "octo-org/octo-repo"
REPO_ID = "690001234"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL 15 cluster in a temp dir on a free loopback port, for this session."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("install the postgresql package (apt-get install postgresql)")
    workdir = Path(tempfile.mkdtemp(prefix="jobtoken-pg-"))
    data, sockets = workdir / "data", workdir / "sock"
    data.mkdir()
    sockets.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sockets, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "jobtoken",
         "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    subprocess.run(
        [*as_postgres, str(PG_BIN / "pg_ctl"), "-w", "-D", str(data), "-o", options,
         "-l", str(workdir / "log"), "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"host=127.0.0.1 port={port} user=jobtoken dbname=postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-w", "-D", str(data), "-m", "immediate",
             "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)


# -- a real broker process -------------------------------------------------------------

POLICY = f"""\
version: 1
repository: {REPO}
repository_id: "{REPO_ID}"
connectors:
  contacts:
    - name: read-from-main
      scopes: [contacts.read]
      max_ttl: 10m
      when:
        ref: refs/heads/main
  vault:
    - scopes: [ftp.read]
      max_ttl: 5m
"""


@dataclass
class BrokerProcess:
    """``jobtoken broker serve`` in a subprocess; its stderr goes to ``log_path``."""

    workdir: Path
    issuer: FakeOidcIssuer
    contacts: ContactsApi
    port: int = field(default_factory=free_port)
    master_key: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    passthrough_credential: str = field(default_factory=lambda: "ftp_" + secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "broker.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def db_path(self) -> Path:
        return self.workdir / "broker.db"

    def write_files(self) -> None:
        (self.workdir / "master.key").write_text(self.master_key + "\n")
        (self.workdir / "client.secret").write_text(self.client_secret)
        (self.workdir / "webhook.secret").write_text(self.webhook_secret)
        policies = self.workdir / "policies" / "octo-org"
        policies.mkdir(parents=True, exist_ok=True)
        (policies / "octo-repo.yml").write_text(POLICY)
        self.config_path.write_text(
            f"""
[server]
host = "127.0.0.1"
port = {self.port}
public_url = "{self.url}"
[store]
path = "broker.db"
[keys]
master_key_file = "master.key"
[oidc]
issuers = []
loopback_test_issuers = ["{self.issuer.url}"]
[[introspection_clients]]
id = "resource-server"
secret_file = "client.secret"
[webhook]
secret_file = "webhook.secret"
[policy]
directory = "policies"
[connectors.contacts]
scopes = ["contacts.read", "contacts.write"]
max_ttl_seconds = 900
base_url = "{self.contacts.url}"
[[connectors.contacts.routes]]
method = "GET"
path = "/v1/contacts/**"
scope = "contacts.read"
[connectors.vault]
kind = "passthrough"
allow_passthrough = true
max_ttl_seconds = 300
"""
        )

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "jobtoken.cli", "broker", *args],
            input=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobtoken.cli", "broker", "serve", "--config",
             str(self.config_path)],
            stdout=log, stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the broker exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        pytest.fail("the broker did not become healthy within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def id_token(self, **overrides: object) -> str:
        return self.issuer.mint(audience=self.url, **overrides)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A running broker (module-wide), with a stored credential for both connectors."""
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        process = BrokerProcess(tmp_path_factory.mktemp("broker"), issuer, contacts)
        process.write_files()
        for name, credential in (
            ("contacts", contacts.api_key),
            ("vault", process.passthrough_credential),
        ):
            done = process.cli(
                "connector", "set", name, "--config", str(process.config_path),
                "--credential-file", "-", stdin=credential.encode(),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()
        process.start()
        try:
            yield process
        finally:
            process.stop()
