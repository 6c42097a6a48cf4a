"""A real broker process on loopback, set up the way a platform team would.

``jobtoken broker serve`` runs in a subprocess on a free port, trusting a
``FakeOidcIssuer`` as a loopback test issuer, with a policy directory that
lets ``octo-org/octo-repo`` (id 690001234) read contacts from ``main``, a
``contacts`` connector proxied to a ``ContactsApi``, and every secret (master
key, introspection client secret, webhook secret) in files of its work
directory. The tests and ``make demo`` both use it::

    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        with running_broker(workdir, issuer, contacts) as broker:
            token = broker.id_token()      # an ID token for this broker

Several processes can share one PostgreSQL database, as brokers behind one load
balancer do: give each the same ``store_dsn``, ``public_url`` and ``master_key``
(``workers`` sets ``serve --workers``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from support.contacts_api import ContactsApi
from support.in_process import run_cli
from support.loopback import free_port, kill_tree, stop_process, wait_until_healthy
from support.oidc_issuer import FakeOidcIssuer

REPO = "octo-org/octo-repo"
REPO_ID = "690001234"
START_TIMEOUT = 20.0

POLICY = f"""\
# Which jobs of {REPO} may get which connector tokens.
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


class BrokerStartError(RuntimeError):
    """The broker process exited or did not answer /healthz in time."""


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
    #: a PostgreSQL DSN: ``[store] kind = "postgres"`` with the DSN in a file; else SQLite
    store_dsn: str | None = None
    #: ``[server] public_url`` (the ID tokens' audience, the minted tokens' issuer)
    public_url: str = ""
    workers: int = 1
    #: where the SQLite store lives (relative to ``workdir``, or absolute)
    sqlite_path: str = "broker.db"
    key_refresh_seconds: int = 10
    #: TOML appended to the config (more connectors), and YAML appended to the policy's
    #: ``connectors:`` map (indented two spaces)
    extra_config: str = ""
    extra_policy: str = ""
    log_level: str = "info"
    #: more ``broker serve`` options (``--dev`` for an example ``public_url``)
    serve_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer_url(self) -> str:
        """The broker's public URL: ``public_url`` if set, else where it listens."""
        return self.public_url or self.url

    @property
    def config_path(self) -> Path:
        return self.workdir / "broker.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def db_path(self) -> Path:
        return self.workdir / self.sqlite_path

    @property
    def policy_path(self) -> Path:
        return self.workdir / "policies" / "octo-org" / "octo-repo.yml"

    def write_files(self) -> None:
        files = [
            ("master.key", self.master_key + "\n"),
            ("client.secret", self.client_secret),
            ("webhook.secret", self.webhook_secret),
        ]
        store = f'path = "{self.sqlite_path}"'
        if self.store_dsn is not None:
            files.append(("store.dsn", self.store_dsn))
            store = 'kind = "postgres"\ndsn_file = "store.dsn"'
        for name, value in files:
            path = self.workdir / name
            path.write_text(value)
            path.chmod(0o600)
        self.policy_path.parent.mkdir(parents=True, exist_ok=True)
        self.policy_path.write_text(POLICY + self.extra_policy)
        self.config_path.write_text(
            f"""\
# Written by support.broker_process: every key is in examples/broker/broker.toml.
[server]
host = "127.0.0.1"
port = {self.port}
public_url = "{self.issuer_url}"
log_level = "{self.log_level}"
[store]
{store}
[keys]
master_key_file = "master.key"
signing_key_refresh_seconds = {self.key_refresh_seconds}
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
{self.extra_config}"""
        )

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run ``jobtoken broker ARGS…`` (add ``--config`` yourself where it is needed)."""
        return subprocess.run(
            [sys.executable, "-m", "jobtoken.cli", "broker", *args],
            input=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def set_credentials(self, *, in_process: bool = False) -> None:
        """Store both connectors' upstream credentials, through stdin as an admin would:
        with ``jobtoken broker connector set`` run as a process, or ``in_process`` with
        ``support.in_process.run_cli`` (for a broker that runs in the test process too)."""
        for name, credential in (
            ("contacts", self.contacts.api_key),
            ("vault", self.passthrough_credential),
        ):
            args = ("connector", "set", name, "--config", str(self.config_path),
                    "--credential-file", "-")  # fmt: skip
            if in_process:
                done = run_cli(["broker", *args], stdin=credential.encode())
            else:
                done = self.cli(*args, stdin=credential.encode())
            if done.returncode != 0:
                raise BrokerStartError(f"connector set {name}: {done.stderr.decode()[-2000:]}")

    def start(self) -> None:
        self.spawn()
        self.wait_started()

    def spawn(self) -> None:
        """Start the process without waiting for it (``wait_started`` waits)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobtoken.cli", "broker", "serve", "--config",
                 str(self.config_path), "--workers", str(self.workers), *self.serve_args],
                stdout=log, stderr=log,
            )  # fmt: skip

    def wait_started(self) -> None:
        assert self.process is not None, "spawn() first"
        try:
            wait_until_healthy(
                self.process, f"{self.url}/healthz", name="the broker", timeout=START_TIMEOUT,
                error=BrokerStartError,
            )  # fmt: skip
        except BrokerStartError as exc:
            raise BrokerStartError(f"{exc}\n{self.log_path.read_text()[-2000:]}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the broker and its workers at once (a crash, not a shutdown)."""
        if self.process is not None:
            kill_tree(self.process)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def id_token(self, **overrides: object) -> str:
        """An ID token for this broker's audience, from the fake issuer."""
        return self.issuer.mint(audience=self.issuer_url, **overrides)

    def audit_records(self) -> list[dict[str, Any]]:
        """Every audit record, as ``jobtoken broker audit export`` writes them."""
        done = self.cli("audit", "export", "--config", str(self.config_path))
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode()[-2000:])
        return [json.loads(line) for line in done.stdout.decode().splitlines()]

    def exchange(self, scope: str = "contacts.read", **form: str) -> requests.Response:
        """``POST /token`` for a contacts token with a fresh ID token; ``form`` replaces
        or adds fields (``subject_token=…``, ``resource=…``)."""
        data = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": self.id_token(),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": "contacts",
            "scope": scope,
            **form,
        }
        return requests.post(f"{self.url}/token", data=data, timeout=30)

    def job_completed(
        self,
        *,
        run_id: str,
        run_attempt: str,
        check_run_id: str,
        delivery: str,
        check_run_url: bool = False,
        timeout: float = 30,
    ) -> requests.Response:
        """GitHub's signed ``workflow_job`` ``completed`` webhook for a job of REPO
        (with ``check_run_url``, as github.com sends it, naming the check run)."""
        job: dict[str, object] = {
            "id": int(check_run_id),
            "run_id": int(run_id),
            "run_attempt": int(run_attempt),
        }
        if check_run_url:
            job["check_run_url"] = f"https://api.github.com/repos/o/r/check-runs/{check_run_id}"
        payload = json.dumps(
            {"action": "completed", "repository": {"id": int(REPO_ID)}, "workflow_job": job}
        ).encode()
        digest = hmac.new(self.webhook_secret.encode(), payload, hashlib.sha256).hexdigest()
        return requests.post(
            f"{self.url}/webhooks/github",
            data=payload,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "workflow_job",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": f"sha256={digest}",
            },
            timeout=timeout,
        )

    def introspect(self, token: str) -> requests.Response:
        """``POST /introspect`` as the resource-server client."""
        return requests.post(
            f"{self.url}/introspect",
            data={"token": token},
            auth=("resource-server", self.client_secret),
            timeout=30,
        )


@contextmanager
def serving_broker(workdir: Path, **options: Any) -> Iterator[BrokerProcess]:
    """A started broker with its own fake issuer and contacts API (``options`` are
    :class:`BrokerProcess` fields: ``workers``, ``store_dsn``, ``sqlite_path``…)."""
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(workdir, issuer, contacts, **options) as broker,
    ):
        yield broker


@contextmanager
def running_broker(
    workdir: Path, issuer: FakeOidcIssuer, contacts: ContactsApi, **options: Any
) -> Iterator[BrokerProcess]:
    """Write the config, store the credentials, start the broker; stop it after."""
    issuer.claims.update(repository=REPO, repository_id=REPO_ID)
    broker = BrokerProcess(workdir, issuer, contacts, **options)
    broker.write_files()
    broker.set_credentials()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
