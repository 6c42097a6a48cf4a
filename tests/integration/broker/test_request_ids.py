"""Every answer carries an ``X-Request-Id``; a ``/token`` decision's audit record holds
the same id, and a refusal's log line holds it with the reason, the connector and the
repository, so that a user's report, the log and the audit trail can be matched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobtoken.broker.store import open_store
from support.broker_process import REPO, BrokerProcess, serving_broker


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
