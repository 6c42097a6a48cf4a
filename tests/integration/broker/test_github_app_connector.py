"""A GitHub App connector end to end: a real broker process and a loopback fake of
GitHub's API that checks every documented field (support/fake_github_app.py).

Each exchange mints an installation token for the job's repository only, with the
permissions its granted scopes name; the proxy injects that job's token and no other;
revoking the broker token (the revoke step) or the job ending (the webhook) deletes the
installation token at GitHub; a passthrough lease says so in its answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support.broker_process import REPO, REPO_ID, BrokerProcess
from support.contacts_api import ContactsApi
from support.fake_github_app import FakeGitHubApp
from support.leak_check import assert_nothing_leaked
from support.oidc_issuer import FakeOidcIssuer

OWNER = REPO.split("/")[0]
ACCEPT = {"Accept": "application/vnd.github+json"}
POLICY = """\
  github:
    - scopes: [issues:read]
      max_ttl: 10m
  github-direct:
    - scopes: [issues:read]
      max_ttl: 10m
"""


def connector_toml(github: FakeGitHubApp, name: str, kind: str) -> str:
    passthrough = "allow_passthrough = true\n" if kind == "passthrough" else ""
    return f"""
[connectors.{name}]
template = "github-app"
kind = "{kind}"
{passthrough}base_url = "{github.url}"
[connectors.{name}.github_app]
app_id = "{github.app_id}"
api_url = "{github.url}"
"""


@pytest.fixture
def github() -> Iterator[FakeGitHubApp]:
    with FakeGitHubApp(repositories=(REPO, f"{OWNER}/other")) as fake:
        yield fake
        assert fake.problems == []


@pytest.fixture
def broker(tmp_path: Path, github: FakeGitHubApp) -> Iterator[BrokerProcess]:
    config = connector_toml(github, "github", "minted") + connector_toml(
        github, "github-direct", "passthrough"
    )
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        process = BrokerProcess(
            tmp_path, issuer, contacts, extra_config=config, extra_policy=POLICY
        )
        process.write_files()
        for name in ("github", "github-direct"):
            done = process.cli(
                "connector", "set", name, "--config", str(process.config_path),
                "--credential-file", "-", stdin=github.private_key_pem,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()
            assert b"GitHub App private key" in done.stdout
        process.start()
        try:
            yield process
        finally:
            process.stop()


def call(broker: BrokerProcess, token: str, path: str) -> requests.Response:
    return requests.get(
        f"{broker.url}/proxy/github{path}",
        headers={"Authorization": f"Bearer {token}", **ACCEPT},
        timeout=30,
    )


def test_an_exchange_mints_an_installation_token_for_the_job_alone(
    broker: BrokerProcess, github: FakeGitHubApp
) -> None:
    answer = broker.exchange(resource="github", scope="issues:read")
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert "upstream_revoked_at_job_end" not in answer.json()  # minted: no lease
    [(installation_token, installation)] = github.tokens.items()
    assert installation.repositories == (REPO,)  # asked for by name: the job's repository
    assert installation.permissions == {"issues": "read"}
    assert installation_token not in answer.text  # the job holds only the broker token
    assert call(broker, token, f"/repos/{REPO}/issues").status_code == 200
    # the installation token covers the job's repository only
    assert call(broker, token, f"/repos/{OWNER}/other/issues").status_code == 403
    # and the broker refuses a scope the job was not granted before calling GitHub
    refused = call(broker, token, f"/repos/{REPO}/contents/README.md")
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    # a second job gets a token of its own
    broker.exchange(resource="github", scope="issues:read")
    assert len(github.live_tokens()) == 2


def test_a_replayed_id_token_or_one_of_an_ended_job_mints_nothing_at_github(
    broker: BrokerProcess, github: FakeGitHubApp
) -> None:
    id_token = broker.id_token(run_id="5201", check_run_id="6201")
    first = broker.exchange(resource="github", scope="issues:read", subject_token=id_token)
    assert first.status_code == 200, first.text
    replayed = broker.exchange(resource="github", scope="issues:read", subject_token=id_token)
    attempt = str(broker.issuer.claims["run_attempt"])
    ended = broker.job_completed(
        run_id="5202", run_attempt=attempt, check_run_id="6202", delivery="d-5202"
    )
    assert ended.status_code == 200, ended.text
    late = broker.exchange(
        resource="github",
        scope="issues:read",
        subject_token=broker.id_token(run_id="5202", check_run_id="6202"),
    )

    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")
    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")
    assert "already used" in replayed.json()["error_description"]
    assert "completed" in late.json()["error_description"]
    minted = [r for r in github.requests if r.path.endswith("/access_tokens")]
    assert len(minted) == 1  # the first exchange's only
    assert [r for r in github.requests if r.method == "DELETE"] == []
    denied = [r["reason"] for r in broker.audit_records() if r["decision"] == "denied"]
    assert denied == ["replayed", "job_completed"]


def test_revoking_the_broker_token_deletes_the_installation_token(
    broker: BrokerProcess, github: FakeGitHubApp
) -> None:
    token = broker.exchange(resource="github", scope="issues:read").json()["access_token"]
    requests.post(f"{broker.url}/revoke", data={"token": token}, timeout=10)
    assert github.live_tokens() == []
    assert [r.method for r in github.requests if r.path == "/installation/token"] == ["DELETE"]
    decisions = [(r["decision"], r["reason"]) for r in broker.audit_records()]
    assert ("revoked_upstream", "installation_token_deleted") in decisions
    assert call(broker, token, f"/repos/{REPO}/issues").status_code == 401


def test_a_passthrough_lease_is_the_installation_token_and_dies_with_the_job(
    broker: BrokerProcess, github: FakeGitHubApp
) -> None:
    answer = broker.exchange(resource="github-direct", scope="issues:read", ttl="3600")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["upstream_revoked_at_job_end"] is True
    assert github.tokens[body["access_token"]].live()
    assert body["expires_in"] <= 3600  # capped at the installation token's hour
    claims = broker.issuer.claims
    done = broker.job_completed(
        run_id=str(claims["run_id"]), run_attempt=str(claims["run_attempt"]),
        check_run_id=str(claims["check_run_id"]), delivery="d-1",
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert not github.tokens[body["access_token"]].live()


def test_github_down_is_503_and_nothing_is_issued(
    broker: BrokerProcess, github: FakeGitHubApp
) -> None:
    github.fail = "status_500"
    answer = broker.exchange(resource="github", scope="issues:read")
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    github.fail = None
    records = broker.audit_records()
    assert [r for r in records if r["decision"] == "issued"] == []
    assert github.live_tokens() == []


def test_no_app_key_or_installation_token_reaches_the_store_its_wal_or_the_log(
    broker: BrokerProcess, github: FakeGitHubApp
) -> None:
    minted = broker.exchange(resource="github", scope="issues:read").json()["access_token"]
    assert call(broker, minted, f"/repos/{REPO}/issues").status_code == 200
    broker.exchange(resource="github-direct", scope="issues:read")
    requests.post(f"{broker.url}/revoke", data={"token": minted}, timeout=10)
    places = {
        "the broker's log": broker.log_path.read_bytes(),
        "the store": broker.db_path.read_bytes(),
        "the store's WAL": Path(f"{broker.db_path}-wal").read_bytes(),
        "the audit export": "\n".join(map(str, broker.audit_records())).encode(),
    }
    secrets = [github.private_key_pem.decode(), *github.tokens]
    assert len(secrets) == 3
    assert assert_nothing_leaked(places, secrets) > 0
