"""Every answer carries an ``X-Request-Id``; the audit record of a ``/token``,
``/revoke`` or ``/introspect`` decision holds the same id, and a refusal's log line
holds it with the reason, the connector and the repository, so that a user's report,
the log and the audit trail can be matched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobtoken.broker.store import open_store
from support.broker_process import REPO, BrokerProcess, serving_broker

ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with serving_broker(tmp_path) as process:
        yield process


def _audit_by_request_id(broker: BrokerProcess) -> dict[str, dict[str, object]]:
    store = open_store("sqlite", path=broker.db_path)
    try:
        records = [json.loads(row.record) for row in store.audit_rows()]
    finally:
        store.close()
    return {str(r["request_id"]): r for r in records}


def test_a_decision_is_found_by_its_request_id_in_the_log_and_the_audit(
    broker: BrokerProcess,
) -> None:
    issued = broker.exchange()
    denied = broker.exchange("contacts.write")  # not granted by the policy
    assert (issued.status_code, denied.status_code) == (200, 400)
    ids = [r.headers["X-Request-Id"] for r in (issued, denied)]
    assert all(len(i) == 16 for i in ids)
    assert ids[0] != ids[1]
    assert requests.get(f"{broker.url}/healthz", timeout=10).headers["X-Request-Id"]

    records = _audit_by_request_id(broker)
    assert records[ids[0]]["decision"] == "issued"
    assert records[ids[1]]["decision"] == "denied"
    refused = [
        json.loads(line)
        for line in broker.log_path.read_text().splitlines()
        if line.startswith("{") and json.loads(line)["message"] == "token refused"
    ]
    assert len(refused) == 1
    assert refused[0]["request_id"] == ids[1]
    assert refused[0]["reason"] == records[ids[1]]["reason"]
    assert (refused[0]["connector"], refused[0]["repository"]) == ("contacts", REPO)
    requests_logged = [
        json.loads(line)["request_id"]
        for line in broker.log_path.read_text().splitlines()
        if line.startswith("{") and json.loads(line)["message"] == "request"
    ]
    assert set(ids) <= set(requests_logged)


def test_revocation_and_introspection_records_hold_the_request_id(broker: BrokerProcess) -> None:
    token = broker.exchange().json()["access_token"]
    introspected = broker.introspect(token)
    refused = requests.post(f"{broker.url}/introspect", data={"token_type_hint": "x"}, timeout=10,
                            auth=("resource-server", broker.client_secret))  # fmt: skip
    revoked = requests.post(f"{broker.url}/revoke", data={"token": token}, timeout=10)
    again = requests.post(f"{broker.url}/revoke", data={"token": token}, timeout=10)
    bad_id_token = requests.post(
        f"{broker.url}/revoke",
        data={"token_id": "x", "subject_token": "not-a-jwt", "subject_token_type": ID_TOKEN},
        timeout=10,
    )
    assert [r.status_code for r in (introspected, refused, revoked, again, bad_id_token)] == [
        200, 400, 200, 200, 400,
    ]  # fmt: skip
    records = _audit_by_request_id(broker)
    answers = (introspected, refused, revoked, again, bad_id_token)
    found = [records[r.headers["X-Request-Id"]] for r in answers]
    decisions = [(r["decision"], r["reason"]) for r in found]
    assert decisions[:4] == [
        ("introspected", "active"),
        ("denied", "missing_token"),
        ("revoked", "revoke_endpoint"),
        ("revoked", "unknown_or_already_revoked"),
    ]
    assert decisions[4][0] == "denied"
