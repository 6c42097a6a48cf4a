"""Job end against the real broker process: once GitHub reports a job completed, no
exchange bound to it succeeds (whatever ID token it kept), a repeated or late delivery
changes nothing, and a sibling job of the same run cannot revoke this job's tokens."""

from __future__ import annotations

import json
import sqlite3
import uuid

import requests

from support.broker_process import BrokerProcess

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


def _exchange(broker: BrokerProcess, id_token: str) -> requests.Response:
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": id_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "resource": "contacts",
        "scope": "contacts.read",
    }
    return requests.post(f"{broker.url}/token", data=form, timeout=10)


def _introspect(broker: BrokerProcess, token: str) -> dict[str, object]:
    response = requests.post(
        f"{broker.url}/introspect",
        data={"token": token},
        auth=("resource-server", broker.client_secret),
        timeout=10,
    )
    body: dict[str, object] = response.json()
    return body


def _complete(
    broker: BrokerProcess, run_id: str, check_run_id: str, delivery: str | None = None
) -> requests.Response:
    return broker.job_completed(
        run_id=run_id,
        run_attempt=str(broker.issuer.claims["run_attempt"]),
        check_run_id=check_run_id,
        delivery=delivery or str(uuid.uuid4()),
        check_run_url=True,
        timeout=5,
    )


def _audit_reasons(broker: BrokerProcess) -> list[tuple[str, str]]:
    with sqlite3.connect(broker.db_path) as db:
        rows = db.execute("SELECT record FROM audit ORDER BY seq").fetchall()
    return [(json.loads(r)["decision"], json.loads(r)["reason"]) for (r,) in rows]


def test_an_id_token_kept_from_before_job_end_mints_nothing_after_it(
    broker: BrokerProcess,
) -> None:
    kept = broker.id_token(run_id="6001", check_run_id="7001")  # fetched while running
    issued = _exchange(broker, broker.id_token(run_id="6001", check_run_id="7001")).json()
    assert _complete(broker, "6001", "7001").json() == {"revoked": 1}
    refused = _exchange(broker, kept)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "completed" in refused.json()["error_description"]
    assert _audit_reasons(broker)[-1] == ("denied", "job_completed")
    assert _introspect(broker, issued["access_token"]) == {"active": False}


def test_a_sibling_job_of_the_same_run_still_mints(broker: BrokerProcess) -> None:
    assert _complete(broker, "6002", "7002").status_code == 200
    sibling = _exchange(broker, broker.id_token(run_id="6002", check_run_id="7003"))
    assert sibling.status_code == 200, sibling.text


def test_an_id_token_without_check_run_id_is_refused_once_a_job_of_its_attempt_ended(
    broker: BrokerProcess,
) -> None:
    assert _complete(broker, "6003", "7004").status_code == 200
    refused = _exchange(broker, broker.id_token(run_id="6003", check_run_id=""))
    assert refused.json()["error"] == "invalid_grant"


def test_a_repeated_or_late_delivery_changes_nothing(broker: BrokerProcess) -> None:
    delivery = str(uuid.uuid4())
    assert _complete(broker, "6004", "7005", delivery).json() == {"revoked": 0}
    again = _complete(broker, "6004", "7005", delivery)
    assert again.status_code == 200
    assert again.json() == {"duplicate": True}
    late = _complete(broker, "6004", "7005")  # a fresh delivery of the same job end
    assert late.json() == {"revoked": 0}
    assert _exchange(broker, broker.id_token(run_id="6004", check_run_id="7005")).status_code == 400
    with sqlite3.connect(broker.db_path) as db:
        (rows,) = db.execute("SELECT count(*) FROM ended_jobs WHERE run_id = '6004'").fetchone()
    assert rows == 1


def test_a_malformed_delivery_id_is_refused_and_ends_nothing(broker: BrokerProcess) -> None:
    assert _complete(broker, "6005", "7006", delivery="x" * 65).status_code == 400
    assert _exchange(broker, broker.id_token(run_id="6005", check_run_id="7006")).status_code == 200


def test_a_sibling_job_cannot_revoke_this_jobs_token_by_id(broker: BrokerProcess) -> None:
    issued = _exchange(broker, broker.id_token(run_id="6006", check_run_id="7007")).json()
    form = {"token_id": issued["token_id"], "subject_token_type": ID_TOKEN_TYPE}
    sibling = broker.id_token(run_id="6006", check_run_id="7008")
    response = requests.post(
        f"{broker.url}/revoke", data={**form, "subject_token": sibling}, timeout=5
    )
    assert response.status_code == 200  # reveals nothing
    assert _introspect(broker, issued["access_token"])["active"] is True
    own = broker.id_token(run_id="6006", check_run_id="7007")
    requests.post(f"{broker.url}/revoke", data={**form, "subject_token": own}, timeout=5)
    assert _introspect(broker, issued["access_token"]) == {"active": False}
