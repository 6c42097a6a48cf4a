"""Sealed credentials for GitOps, end to end with real processes: the broker's seal key
from ``jobtoken broker seal-key``, a credential sealed with ``jobtoken seal``, a config
that names the file, and a running broker serving a proxied call with it."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from nacl.public import PrivateKey

from support.broker_process import BrokerProcess
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

EXTRA_CONFIG = """
[connectors.crm]
scopes = ["contacts.read"]
base_url = "{url}"
credential_sealed_file = "crm.sealed"
[[connectors.crm.routes]]
method = "GET"
path = "/v1/contacts/**"
scope = "contacts.read"
"""
EXTRA_POLICY = """\
  crm:
    - scopes: [contacts.read]
      max_ttl: 10m
"""


def _seal(public_key: str, credential: str, output: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobtoken.cli", "seal", "--key", public_key,
         "--output", str(output)],
        input=credential.encode(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository="octo-org/octo-repo", repository_id="690001234")
        process = BrokerProcess(
            tmp_path,
            issuer,
            contacts,
            extra_config=EXTRA_CONFIG.format(url=contacts.url),
            extra_policy=EXTRA_POLICY,
        )
        process.write_files()
        process.set_credentials()  # the other connectors; crm's is only in its file
        seal_key = process.cli("seal-key", "--config", str(process.config_path))
        assert seal_key.returncode == 0, seal_key.stderr
        _seal(seal_key.stdout.decode().strip(), contacts.api_key, tmp_path / "crm.sealed")
        process.start()
        try:
            yield process
        finally:
            process.stop()


def _proxied_call(broker: BrokerProcess) -> requests.Response:
    exchanged = broker.exchange(resource="crm")
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    return requests.get(
        f"{broker.url}/proxy/crm/v1/contacts",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_the_broker_serves_a_proxied_call_with_the_sealed_credential(
    broker: BrokerProcess,
) -> None:
    response = _proxied_call(broker)
    assert response.status_code == 200, response.text
    assert broker.contacts.requests[-1] == ("GET", "/v1/contacts", True)  # the key was right
    opened = [r for r in broker.audit_records() if r["decision"] == "credential_opened"]
    assert len(opened) == 1
    digest = hashlib.sha256((broker.workdir / "crm.sealed").read_bytes()).hexdigest()
    assert (opened[0]["connector"], opened[0]["file_sha256"]) == ("crm", digest)
    assert _proxied_call(broker).status_code == 200
    assert len([r for r in broker.audit_records() if r["decision"] == "credential_opened"]) == 1
    api_key = broker.contacts.api_key
    assert api_key not in json.dumps(broker.audit_records())
    assert api_key not in broker.log_path.read_text()


def test_a_file_sealed_to_another_broker_is_refused_and_logged_with_what_to_do(
    broker: BrokerProcess,
) -> None:
    other = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    _seal(other, broker.contacts.api_key, broker.workdir / "crm.sealed")
    response = _proxied_call(broker)
    assert response.status_code == 503
    assert "crm.sealed" not in response.text  # the job learns no path; the log has it
    log = broker.log_path.read_text()
    assert "sealed credential file refused" in log
    assert "crm.sealed is sealed to key seal-" in log
    assert "jobtoken broker seal-key" in log
    check = broker.cli("check", "--config", str(broker.config_path))
    assert check.returncode == 1
    assert b"connector crm:" in check.stdout
    assert b"another broker" in check.stdout
