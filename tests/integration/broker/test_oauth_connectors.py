"""OAuth connectors' failure modes and the connect flow, with a real broker process and
the Authlib provider (support/oauth_provider.py): a refresh token revoked by the user,
the provider down, `jobtoken broker connect` through a scripted browser, passthrough
access tokens, and a scan of the store, its WAL and the broker's debug log for every
secret the provider and the broker handled."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support.broker_process import REPO, REPO_ID, BrokerProcess
from support.contacts_api import ContactsApi
from support.leak_check import assert_nothing_leaked
from support.oauth_provider import OAuthProvider, browser_login_and_consent
from support.oidc_issuer import FakeOidcIssuer

POLICY = """\
  crm:
    - scopes: [contacts.read]
      max_ttl: 10m
  crm-direct:
    - scopes: [contacts.read]
      max_ttl: 10m
  batch:
    - scopes: [contacts.read]
      max_ttl: 10m
"""


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_token_seconds=30) as running:
        yield running


@pytest.fixture
def broker(tmp_path: Path, provider: OAuthProvider) -> Iterator[BrokerProcess]:
    """A broker with two connectors on the provider, ``crm`` (minted, proxied) and
    ``crm-direct`` (passthrough), their client secret stored, nothing connected yet."""
    config = (
        provider.connector_toml("crm")
        + provider.connector_toml("crm-direct", kind="passthrough")
        + provider.connector_toml(
            "batch", credential="oauth2-client-credentials", kind="passthrough"
        )
    )
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        process = BrokerProcess(
            tmp_path, issuer, contacts, extra_config=config, extra_policy=POLICY,
            log_level="debug",
        )  # fmt: skip
        process.write_files()
        for name in ("crm", "crm-direct", "batch"):
            run(process, "connector", "set", name, "--credential-file", "-",
                stdin=provider.client_secret)  # fmt: skip
        process.start()
        try:
            yield process
        finally:
            process.stop()


def run(broker: BrokerProcess, *args: str, stdin: str = "") -> str:
    done = broker.cli(*args, "--config", str(broker.config_path), stdin=stdin.encode())
    assert done.returncode == 0, done.stderr.decode()
    return (done.stdout + done.stderr).decode()


def connect_headless(broker: BrokerProcess, provider: OAuthProvider, name: str = "crm") -> str:
    return run(
        broker, "connect", name, "--refresh-token-file", "-", stdin=provider.issue_refresh_token()
    )


def proxied(broker: BrokerProcess, token: str) -> requests.Response:
    return requests.get(
        f"{broker.url}/proxy/crm/v1/contacts",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def start_connect(broker: BrokerProcess, timeout: int) -> subprocess.Popen[str]:
    """``jobtoken broker connect crm`` in the background, as an operator runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobtoken.cli", "broker", "connect", "crm",
         "--config", str(broker.config_path), "--timeout", str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_connect_through_the_browser_flow_then_call_the_api(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    command = start_connect(broker, 30)
    assert command.stdout is not None
    url = ""
    while not url:
        line = command.stdout.readline()
        assert line, "connect ended before printing the authorization URL"
        if line.strip().startswith(provider.authorize_url):
            url = line.strip()
    assert "code_challenge_method=S256" in url
    assert re.search(r"redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fcallback", url)
    callback = browser_login_and_consent(url, provider.username, provider.password)
    # the browser follows the provider's redirect to the command's loopback listener
    assert requests.get(callback, timeout=10).status_code == 200
    out, err = command.communicate(timeout=30)
    assert command.returncode == 0, err
    assert "connected connector crm" in out
    assert provider.code_grants == 1
    token = broker.exchange(resource="crm").json()["access_token"]
    answer = proxied(broker, token)
    assert answer.status_code == 200
    assert answer.json()["contacts"][0]["name"] == "Ada Lovelace"
    listed = run(broker, "connector", "list")
    assert re.search(r"crm\s+minted\s+oauth2-refresh\s+yes\s+ready", listed)


def test_a_forged_callback_is_refused_and_the_wait_goes_on(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    command = start_connect(broker, 5)
    assert command.stdout is not None
    line = ""
    while "waiting up to" not in line:
        line = command.stdout.readline()
        assert line
    port = re.search(r"127\.0\.0\.1:(\d+)/callback", line)
    assert port is not None
    forged = requests.get(
        f"http://127.0.0.1:{port.group(1)}/callback?code=stolen&state=guess", timeout=5
    )
    assert forged.status_code == 400
    _, err = command.communicate(timeout=30)
    assert command.returncode == 1
    assert "no redirect" in err
    assert provider.code_grants == 0


def test_a_refresh_token_revoked_by_the_user_needs_reauthorization(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    connect_headless(broker, provider)
    token = broker.exchange(resource="crm").json()["access_token"]
    provider.revoke_all_refresh_tokens()
    for access in provider.current_access_tokens():  # and the access tokens with them
        requests.post(
            provider.revoke_url, data={"token": access},
            auth=(provider.client_id, provider.client_secret), timeout=10,
        )  # fmt: skip
    answer = proxied(broker, token)  # 401 upstream: one forced refresh, invalid_grant
    assert answer.status_code == 502
    assert "jobtoken broker connect crm" in answer.json()["error_description"]
    refused = broker.exchange(resource="crm")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_target"
    assert "needs re-authorization" in refused.json()["error_description"]
    decisions = [(r["decision"], r["reason"]) for r in broker.audit_records()]
    assert ("refresh_failed", "invalid_grant") in decisions
    assert ("denied", "needs_reauthorization") in decisions
    assert "needs reauthorization" in run(broker, "connector", "list")
    metrics = requests.get(f"{broker.url}/metrics", timeout=10).text
    assert 'jobtoken_connector_needs_reauthorization{connector="crm"} 1' in metrics
    assert 'jobtoken_connector_needs_reauthorization{connector="batch"} 0' in metrics
    assert provider.api_ok == 0
    # the gauge is the store's state at the scrape: 0 once reconnected, before any refresh
    connect_headless(broker, provider)
    metrics = requests.get(f"{broker.url}/metrics", timeout=10).text
    assert 'jobtoken_connector_needs_reauthorization{connector="crm"} 0' in metrics
    assert "connector's grant needs re-authorization" in broker.log_path.read_text()


def test_the_provider_down_is_503_and_nothing_is_issued(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    provider.down = True
    run(broker, "connector", "set", "crm-direct", "--credential-file", "-",
        stdin=provider.client_secret)  # fmt: skip
    done = broker.cli(
        "connect", "crm-direct", "--refresh-token-file", "-", "--config",
        str(broker.config_path), stdin=provider.issue_refresh_token().encode(),
    )  # fmt: skip
    assert done.returncode == 1
    assert b"unavailable" in done.stderr
    answer = broker.exchange(resource="crm-direct")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"].isdigit()
    assert answer.json()["error"] == "temporarily_unavailable"
    records = broker.audit_records()
    assert [r for r in records if r["decision"] == "issued"] == []
    assert ("denied", "provider_unavailable") in [(r["decision"], r["reason"]) for r in records]


def test_passthrough_hands_out_the_access_token_capped_at_its_life(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    connect_headless(broker, provider, "crm-direct")
    answer = broker.exchange(resource="crm-direct", ttl="600")
    assert answer.status_code == 200
    body = answer.json()
    assert body["access_token"] in provider.current_access_tokens()
    assert body["expires_in"] <= 30  # the access token's remaining life, not 600
    direct = requests.get(
        provider.api_url + "/v1/contacts",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    )
    assert direct.status_code == 200


def test_no_secret_reaches_the_store_its_wal_or_the_debug_log(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    connect_headless(broker, provider)
    connect_headless(broker, provider, "crm-direct")
    token = broker.exchange(resource="crm").json()["access_token"]
    assert proxied(broker, token).status_code == 200
    broker.exchange(resource="crm-direct")  # a passthrough lease of the access token
    time.sleep(0.2)
    places = {
        "the broker's debug log": broker.log_path.read_bytes(),
        "the store": broker.db_path.read_bytes(),
        "the store's WAL": Path(f"{broker.db_path}-wal").read_bytes(),
        "the audit export": "\n".join(map(str, broker.audit_records())).encode(),
    }
    secrets = [provider.client_secret, *provider.issued_secrets]
    checked = assert_nothing_leaked(places, secrets)
    print(f"leak scan: {len(secrets)} secrets, {len(places)} places, {checked} checks, 0 found")


def test_rotate_master_key_rewraps_the_grant_and_the_broker_keeps_refreshing(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    connect_headless(broker, provider)
    old_key = broker.master_key
    (broker.workdir / "old.key").write_text(old_key)
    broker.master_key = base64.b64encode(os.urandom(32)).decode()
    (broker.workdir / "master.key").write_text(broker.master_key)
    text = broker.config_path.read_text()
    broker.config_path.write_text(
        text.replace('master_key_file = "master.key"',
                     'master_key_file = "master.key"\nprevious_master_key_files = ["old.key"]')
    )  # fmt: skip
    rotated = run(broker, "rotate-master-key")
    # 2 client secrets, 1 grant, the signing key(s)
    moved = int(re.search(r"re-wrapped (\d+) record", rotated).group(1))  # type: ignore[union-attr]
    assert moved >= 4
    broker.config_path.write_text(text)  # the old key is gone from the config
    broker.restart()
    token = broker.exchange(resource="crm").json()["access_token"]
    # the restarted broker opens the grant (access and refresh token) under the new key
    assert proxied(broker, token).status_code == 200


def test_a_client_credentials_lease_is_the_jobs_own_and_revoked_at_the_provider(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    first = broker.exchange(resource="batch").json()
    second = broker.exchange(resource="batch").json()
    assert provider.client_credentials_grants == 2  # one grant per job, not a shared token
    assert first["access_token"] != second["access_token"]
    assert first["upstream_revoked_at_job_end"] is True
    assert first["access_token"] in provider.current_access_tokens()
    requests.post(f"{broker.url}/revoke", data={"token": first["access_token"]}, timeout=10)
    assert first["access_token"] not in provider.current_access_tokens()  # RFC 7009
    assert second["access_token"] in provider.current_access_tokens()
    decisions = [(r["decision"], r["reason"]) for r in broker.audit_records()]
    assert ("revoked_upstream", "rfc7009") in decisions
