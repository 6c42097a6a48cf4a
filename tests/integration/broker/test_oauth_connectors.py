"""OAuth connectors' failure modes and the connect flow, with a real broker process and
the Authlib provider (support/oauth_provider.py): a refresh token revoked by the user,
the provider down, `jobtoken broker connect` through a scripted browser, passthrough
access tokens, and a scan of the store, its WAL and the broker's debug log for every
secret the provider and the broker handled."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def start_connect(broker: BrokerProcess, timeout: int, *extra: str) -> subprocess.Popen[str]:
    """``jobtoken broker connect crm`` in the background, as an operator runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobtoken.cli", "broker", "connect", "crm",
         "--config", str(broker.config_path), "--timeout", str(timeout), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def authorization_url(command: subprocess.Popen[str], provider: OAuthProvider) -> str:
    assert command.stdout is not None
    while True:
        line = command.stdout.readline()
        assert line, "connect ended before printing the authorization URL"
        if line.strip().startswith(provider.authorize_url):
            return line.strip()


def test_connect_through_the_browser_flow_then_call_the_api(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    command = start_connect(broker, 30)
    url = authorization_url(command, provider)
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


def test_redirect_host_localhost_names_localhost_and_listens_on_the_loopback_address(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    command = start_connect(broker, 30, "--redirect-host", "localhost")
    url = authorization_url(command, provider)
    found = re.search(r"redirect_uri=http%3A%2F%2Flocalhost%3A(\d+)%2Fcallback", url)
    assert found is not None, url
    callback = browser_login_and_consent(url, provider.username, provider.password)
    assert callback.startswith(f"http://localhost:{found.group(1)}/callback?")
    # the listener is on 127.0.0.1, whatever the name in the redirect URI
    loopback = callback.replace("http://localhost:", "http://127.0.0.1:", 1)
    assert requests.get(loopback, timeout=10).status_code == 200
    out, err = command.communicate(timeout=30)
    assert command.returncode == 0, err
    assert "connected connector crm" in out
    assert provider.code_grants == 1  # the exchange named the same localhost redirect URI


def test_no_browser_takes_the_pasted_redirect_url_and_connects(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    command = start_connect(broker, 30, "--no-browser")
    url = authorization_url(command, provider)
    assert re.search(r"redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fcallback", url)
    assert command.stdout is not None
    assert "paste it here" in command.stdout.readline()
    # approved in a browser elsewhere: its redirect to 127.0.0.1 fails to load there, and
    # the operator pastes the address bar's URL
    location = browser_login_and_consent(url, provider.username, provider.password)
    out, err = command.communicate(location + "\n", timeout=30)
    assert command.returncode == 0, err
    assert "connected connector crm" in out
    assert provider.code_grants == 1  # the code exchanged with the verifier (PKCE)
    assert listed(broker, "crm")["state"] == "ready"


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (lambda loc: re.sub(r"state=[^&]+", "state=guess", loc), "state differs"),
        (lambda loc: loc.replace("/callback", "/other"), "is not a redirect to"),
        (lambda loc: "https://attacker.example/callback?" + loc.split("?", 1)[1],
         "is not a redirect to"),
    ],
)  # fmt: skip
def test_no_browser_refuses_a_pasted_url_that_is_not_its_redirect(
    broker: BrokerProcess, provider: OAuthProvider, forge: Any, message: str
) -> None:
    command = start_connect(broker, 30, "--no-browser")
    url = authorization_url(command, provider)
    location = browser_login_and_consent(url, provider.username, provider.password)
    _, err = command.communicate(forge(location) + "\n", timeout=30)
    assert command.returncode == 1
    assert message in err
    assert provider.code_grants == 0
    assert listed(broker, "crm")["state"] == "not connected"


def test_a_forged_callback_is_refused_and_the_wait_goes_on(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    command = start_connect(broker, 5)
    port = _callback_port(command)
    forged = requests.get(f"http://127.0.0.1:{port}/callback?code=stolen&state=guess", timeout=5)
    assert forged.status_code == 400
    _, err = command.communicate(timeout=30)
    assert command.returncode == 1
    assert "no redirect" in err
    assert provider.code_grants == 0


def _callback_port(command: subprocess.Popen[str]) -> int:
    assert command.stdout is not None
    line = ""
    while "waiting up to" not in line:
        line = command.stdout.readline()
        assert line, "connect ended before it said where it waits"
    port = re.search(r"127\.0\.0\.1:(\d+)/callback", line)
    assert port is not None
    return int(port.group(1))


def test_an_idle_connection_to_the_callback_port_does_not_outlast_the_timeout(
    broker: BrokerProcess,
) -> None:
    command = start_connect(broker, 3)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", _callback_port(command)), timeout=5):
        try:  # connected and sending nothing, as any local process can
            _, err = command.communicate(timeout=12)
        except subprocess.TimeoutExpired:
            command.kill()
            command.communicate()
            pytest.fail("connect --timeout 3 was still waiting 12 s later")
    assert time.monotonic() - started < 6
    assert command.returncode == 1
    assert "no redirect" in err


def test_ctrl_c_while_connect_waits_is_one_line_and_exit_130(broker: BrokerProcess) -> None:
    command = start_connect(broker, 30)
    _callback_port(command)
    command.send_signal(signal.SIGINT)
    _, err = command.communicate(timeout=10)
    assert command.returncode == 130
    assert err == "jobtoken broker: connect crm interrupted\n"


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


def listed(broker: BrokerProcess, name: str) -> dict[str, object]:
    """The connector's row of ``connector list --json``."""
    rows = [json.loads(line) for line in run(broker, "connector", "list", "--json").splitlines()]
    return next(row for row in rows if row["name"] == name)


def connect_given(broker: BrokerProcess, name: str, refresh_token: str) -> str:
    """``connect NAME --refresh-token-file -`` that the test expects to fail: its stderr."""
    done = broker.cli(
        "connect", name, "--refresh-token-file", "-", "--config", str(broker.config_path),
        stdin=refresh_token.encode(),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    return done.stderr.decode()


def connected_records(broker: BrokerProcess, name: str) -> int:
    return sum(
        1 for r in broker.audit_records() if r["decision"] == "connected" and r["connector"] == name
    )


def test_a_connect_with_the_provider_down_stores_nothing_and_does_not_mark_it_ready(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    provider.down = True
    err = connect_given(broker, "crm-direct", provider.issue_refresh_token())
    assert listed(broker, "crm-direct")["state"] == "not connected"
    assert connected_records(broker, "crm-direct") == 0
    assert "its provider is not answering" in err
    assert "nothing was stored" in err
    refused = broker.exchange(resource="crm-direct")
    assert refused.status_code == 400
    assert "not connected" in refused.json()["error_description"]
    check = broker.cli("check", "--config", str(broker.config_path))
    assert b"connector crm-direct is not connected" in check.stdout + check.stderr
    assert b"connect crm-direct --config" in check.stdout + check.stderr
    assert b" --port PORT` (PORT: the one in the redirect URL registered" in check.stdout


def test_a_connect_with_the_provider_down_leaves_the_working_grant_and_its_last_refresh(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    connect_headless(broker, provider)
    before = listed(broker, "crm")
    time.sleep(1.1)  # a refresh now would show a later last_refresh
    provider.down = True
    err = connect_given(broker, "crm", provider.issue_refresh_token())
    assert "its provider is not answering" in err
    assert listed(broker, "crm") == before
    assert connected_records(broker, "crm") == 1


def test_a_refused_refresh_token_leaves_the_working_grant_untouched(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    connect_headless(broker, provider)
    before = listed(broker, "crm")
    token = broker.exchange(resource="crm").json()["access_token"]
    err = connect_given(broker, "crm", "a-refresh-token-the-provider-never-issued")
    assert "the provider refused the refresh token just given (invalid_grant" in err
    assert "grant is unchanged" in err
    assert "--config FILE" not in err
    assert listed(broker, "crm") == before  # still ready, same refresh, same expiry
    assert connected_records(broker, "crm") == 1
    for access in provider.current_access_tokens():  # force a refresh with the stored grant
        requests.post(
            provider.revoke_url, data={"token": access},
            auth=(provider.client_id, provider.client_secret), timeout=10,
        )  # fmt: skip
    refreshes = provider.refreshes
    assert proxied(broker, token).status_code == 200  # 401 upstream, refreshed, retried
    assert provider.refreshes == refreshes + 1


def test_the_provider_down_is_503_and_nothing_is_issued(
    broker: BrokerProcess, provider: OAuthProvider
) -> None:
    provider.down = True
    answer = broker.exchange(resource="batch")
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
