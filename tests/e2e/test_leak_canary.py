"""The leak canary (issue 12, item 6): every end-to-end workflow once more, with
``ACTIONS_STEP_DEBUG=true`` and ``RUNNER_DEBUG=1``, then a scan for every secret in
every encoding (support.leak_check: raw, base64 and base64url at the three offsets,
hex, URL-encoded, JSON-escaped, each line of a multi-line value).

- **workflows:** against one real broker process (SQLite, ``log_level = "debug"``), a
  static-key connector (exchange, a call through ``/proxy``, revoke by token id with a
  fresh ID token) and an OAuth connector (exchange, two calls through ``/proxy`` across a
  refresh that rotates the refresh token, revoke by token), then GitHub's job-end
  webhook; and each secret-manager provider (OpenBao, moto, the GCP and Azure fakes):
  exchange, use, revoke.
- **where:** the job log; every file the actions wrote (``GITHUB_OUTPUT`` without its
  ``token`` and ``revoke-handle`` entries, which carry the token by design,
  ``GITHUB_ENV``, ``GITHUB_STATE``, ``GITHUB_PATH``, the step summary; support.canary
  captures them); the broker's debug log, its audit export, its database and WAL, and the
  admin CLI's output.
- **for what:** every issued token, upstream credential (static key, OAuth access and
  refresh tokens, cloud credentials), client secret (OAuth client, introspection client,
  webhook, master key) and ID token (and the runner's ID-token request token).

Expected: 0 found. Each test prints what it scanned; the module's totals go to the
terminal at the end (docs/reliability.md has the figures of the last run).
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.act import ActRun
from support.aws_server import MotoServer
from support.broker_process import REPO, REPO_ID, BrokerProcess
from support.canary import (
    CAPTURE,
    CAPTURE_STEP,
    Tally,
    captured_files,
    install_capture,
    without_intended,
)
from support.contacts_api import ContactsApi
from support.fake_azure import FakeAzure
from support.fake_gcp import FakeGcp
from support.oauth_provider import OAuthProvider
from support.oidc_issuer import FakeOidcIssuer
from support.provider_workflow import provider_workflow

from .conftest import RunAct
from .provider_servers import Deployed

pytestmark = pytest.mark.e2e

ACCESS_TOKEN_SECONDS = 3
MARGIN = 1  # the broker refreshes 2 s after the access token was issued
PAUSE = ACCESS_TOKEN_SECONDS - MARGIN + 0.3  # between the two calls: one refresh between
OAUTH_POLICY = """\
  crm:
    - scopes: [contacts.read]
      max_ttl: 10m
"""
AWS_CREDENTIAL = re.compile(rb"ASIA[A-Z0-9]{16}|FQoGZXIvYXdzE")

HEADER = """\
on: push
permissions: { id-token: write }
jobs:
  job:
    runs-on: ubuntu-latest
    steps:
"""
CALL_STEP = """\
      - id: call
        shell: bash
        env:
          TOKEN: ${{ steps.%(exchange)s.outputs.token }}
          CALL_URL: ${{ env.BROKER_URL }}/proxy/%(connector)s/v1/contacts
          CALLS: "%(calls)d"
          PAUSE: "%(pause)s"
        run: |
          python3 -I - <<'PY'
          import json, os, time, urllib.request
          calls, answered = int(os.environ["CALLS"]), []
          for call in range(calls):
              request = urllib.request.Request(
                  os.environ["CALL_URL"],
                  headers={"Authorization": "Bearer " + os.environ["TOKEN"]},
              )
              with urllib.request.urlopen(request, timeout=10) as response:
                  json.load(response)
                  answered.append(response.status)
              if call + 1 < calls:
                  time.sleep(float(os.environ["PAUSE"]))
          print(f"answered {answered.count(200)} of {calls} calls with 200")
          PY
"""
STATIC = (
    HEADER
    + CAPTURE_STEP
    + """\
      - id: contacts
        uses: owner/jobtoken@v1
        with: { broker-url: "${{ env.BROKER_URL }}", connector: contacts, scopes: contacts.read }
"""
    + CALL_STEP % {"exchange": "contacts", "connector": "contacts", "calls": 1, "pause": "0"}
    + """\
      - id: revoke
        if: always()
        uses: owner/jobtoken/revoke@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          token-id: ${{ steps.contacts.outputs.token-id }}
          fail-on-error: true
"""
)
OAUTH = (
    HEADER
    + CAPTURE_STEP
    + """\
      - id: crm
        uses: owner/jobtoken@v1
        with:
          { broker-url: "${{ env.BROKER_URL }}", connector: crm, scopes: contacts.read, ttl: 10m }
"""
    + CALL_STEP % {"exchange": "crm", "connector": "crm", "calls": 2, "pause": PAUSE}
    + """\
      - id: revoke
        if: always()
        uses: owner/jobtoken/revoke@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          token: ${{ steps.crm.outputs.token }}
          fail-on-error: true
"""
)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    figures = Tally()
    yield figures
    # the totals go to the terminal whatever the capture mode (-q, no -s)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not figures.lines:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in figures.summary():
            reporter.write_line(line)


@pytest.fixture
def capture(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    directory = tmp_path / "capture"
    return directory, install_capture(directory)


# -- the broker -------------------------------------------------------------------------


class Stack:
    """One broker (debug log) with a static and an OAuth connector, for the module."""

    def __init__(
        self, broker: BrokerProcess, issuer: FakeOidcIssuer, provider: OAuthProvider
    ) -> None:
        self.broker, self.issuer, self.provider = broker, issuer, provider
        self.cli_output = b""
        self.issued: list[str] = []

    def cli(self, *args: str, stdin: str = "") -> None:
        done = self.broker.cli(
            *args, "--config", str(self.broker.config_path), stdin=stdin.encode()
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        self.cli_output += done.stdout + done.stderr

    def secrets(self) -> list[str]:
        broker, provider, issuer = self.broker, self.provider, self.issuer
        return [
            *self.issued,  # the tokens the broker issued to the jobs
            broker.contacts.api_key,  # the static connector's upstream key
            broker.passthrough_credential,
            *provider.issued_secrets,  # OAuth access and refresh tokens
            provider.client_secret,
            provider.password,
            broker.client_secret,  # the introspection client's
            broker.webhook_secret,
            broker.master_key,
            *issuer.issued,  # every ID token of the jobs
            issuer.request_token,
        ]

    def places(self) -> dict[str, bytes]:
        broker = self.broker
        places = {"broker log (debug)": broker.log_path.read_bytes()}
        exported = broker.cli("audit", "export", "--config", str(broker.config_path))
        assert exported.returncode == 0, exported.stderr.decode()
        places["audit export"] = exported.stdout
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{broker.db_path}{suffix}")
            if path.exists():
                places[f"database {path.name}"] = path.read_bytes()
        places["admin CLI output"] = self.cli_output
        return places


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with (
        tempfile.TemporaryDirectory(prefix="jobtoken-canary-") as workdir,
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        OAuthProvider(access_token_seconds=ACCESS_TOKEN_SECONDS) as provider,
    ):
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        broker = BrokerProcess(
            Path(workdir), issuer, contacts, log_level="debug", extra_policy=OAUTH_POLICY,
            extra_config=provider.connector_toml("crm", margin=MARGIN),
        )  # fmt: skip
        broker.write_files()
        broker.set_credentials()
        running = Stack(broker, issuer, provider)
        running.cli("connector", "set", "crm", "--credential-file", "-",
                    stdin=provider.client_secret)  # fmt: skip
        running.cli("connect", "crm", "--refresh-token-file", "-",
                    stdin=provider.issue_refresh_token())  # fmt: skip
        broker.start()
        try:
            yield running
        finally:
            broker.stop()


def job_places(run: ActRun, directory: Path, intended: dict[str, str]) -> dict[str, bytes]:
    """The job log and every captured file, ``GITHUB_OUTPUT`` without ``intended``."""
    places = {"job log": run.log.encode()}
    removed = 0
    for name, content in captured_files(directory).items():
        if name.endswith("-GITHUB_OUTPUT"):
            content, taken = without_intended(content, intended)
            removed += taken
        places[name] = content
    assert removed == len(intended), f"expected each of {sorted(intended)} once in GITHUB_OUTPUT"
    return places


def broker_run(
    stack: Stack,
    run_act: RunAct,
    capture: tuple[Path, dict[str, str]],
    workflow: str,
    exchange: str,
) -> tuple[ActRun, dict[str, bytes]]:
    directory, env = capture
    run = run_act(
        workflow,
        issuer=stack.issuer,
        env={"BROKER_URL": stack.broker.url, **env},
        step_debug=True,
    )
    for step in (exchange, "call", "revoke"):
        assert run.steps[step].outcome == "success", run.log
    token = run.steps[exchange].outputs["token"]
    stack.issued.append(token)
    assert stack.broker.introspect(token).json() == {"active": False}
    intended = {"token": token, "revoke-handle": ""}
    return run, job_places(run, directory, intended)


def test_static_connector_exchange_proxy_and_revoke_by_id_leak_nothing(
    stack: Stack, run_act: RunAct, capture: tuple[Path, dict[str, str]], tally: Tally
) -> None:
    run, places = broker_run(stack, run_act, capture, STATIC, "contacts")

    assert "answered 1 of 1 calls with 200" in run.log
    assert len(stack.issuer.issued) >= 2  # the exchange's ID token and the revoke's
    tally.scan("broker, static connector", {**places, **stack.places()}, stack.secrets())


def test_oauth_connector_through_the_proxy_across_a_refresh_leaks_nothing(
    stack: Stack, run_act: RunAct, capture: tuple[Path, dict[str, str]], tally: Tally
) -> None:
    refreshes = stack.provider.refreshes
    run, places = broker_run(stack, run_act, capture, OAUTH, "crm")

    assert "answered 2 of 2 calls with 200" in run.log
    assert stack.provider.refreshes > refreshes, "no refresh happened during the job"
    assert stack.provider.reused_refresh_attempts == 0
    tally.scan("broker, OAuth connector", {**places, **stack.places()}, stack.secrets())


def test_the_job_end_webhook_leaks_nothing(stack: Stack, tally: Tally) -> None:
    claims = stack.issuer.claims
    answer = stack.broker.job_completed(
        run_id=str(claims["run_id"]),
        run_attempt=str(claims["run_attempt"]),
        check_run_id=str(claims.get("check_run_id", "1")),
        delivery="canary-1",
    )
    assert answer.status_code == 200, answer.text
    places = {**stack.places(), "webhook answer": answer.content}
    tally.scan("broker, job-end webhook", places, stack.secrets())


# -- the secret-manager providers ---------------------------------------------------------


PROVIDERS = ["vault", "aws", "gcp", "azure"]


def _handle_secrets(handle: str) -> list[str]:
    """The values inside a revoke handle (``jt1.<base64url JSON>``): a Vault token…"""
    if not handle:
        return []
    payload = handle[4:]  # after "jt1."
    state = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["state"]
    return [str(v) for v in state.values() if isinstance(v, str) and len(v) >= 8]


def _cloud_secrets(server: Any) -> list[str]:
    if isinstance(server, FakeGcp):
        return list(server._grants)
    if isinstance(server, FakeAzure):
        return list(server._tokens)
    return []


@pytest.mark.parametrize(
    ("provider", "case"),
    [(p, "ok") for p in PROVIDERS] + [(p, "bad") for p in PROVIDERS],
)
def test_secret_manager_provider_leaks_nothing(
    provider: str,
    case: str,
    request: pytest.FixtureRequest,
    run_act: RunAct,
    e2e_issuer: FakeOidcIssuer,
    capture: tuple[Path, dict[str, str]],
    tally: Tally,
) -> None:
    """``ok``: exchange, use, revoke. ``bad``: a token with a space, a line break and a
    workflow command in it, which the action refuses (and revokes) without an output."""
    server, deployed = request.getfixturevalue(f"{provider}_deployed")
    assert isinstance(deployed, Deployed)
    if isinstance(server, MotoServer):
        server.enforce_auth(unchecked=1)
    directory, env = capture
    inputs = {**deployed.inputs[case], "scopes": "crm.read", "ttl": "15m"}
    run = run_act(
        provider_workflow(inputs, before=[CAPTURE]), issuer=e2e_issuer, env=env, step_debug=True
    )

    outputs = run.steps["exchange"].outputs
    if case == "ok":
        for step in ("exchange", "use", "revoke"):
            assert run.steps[step].outcome == "success", run.log
        assert outputs["token"] == deployed.tokens["ok"]
        handle = outputs.get("revoke-handle", "")
        intended = {"token": outputs["token"], "revoke-handle": handle}
    else:
        assert run.steps["exchange"].outcome == "failure", run.log
        assert run.steps["use"].outcome == "skipped"
        assert "contains spaces, line breaks, control or non-ASCII characters" in run.log
        assert outputs.get("token", "") == ""
        handle, intended = "", {}
    places = job_places(run, directory, intended)
    for place, content in places.items():
        assert not AWS_CREDENTIAL.search(content), f"AWS temporary credentials in {place}"
    secrets = [
        *deployed.tokens.values(),  # the connector tokens, whole and each piece
        *(part for token in deployed.tokens.values() for part in token.split()),
        *_handle_secrets(handle),  # the Vault token
        *_cloud_secrets(server),
        *e2e_issuer.issued,
        e2e_issuer.request_token,
    ]
    tally.scan(f"provider {provider}, {case} secret", places, secrets)
