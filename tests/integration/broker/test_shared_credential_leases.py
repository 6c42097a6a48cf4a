"""Leases of a shared credential against the real broker process: every job of a
passthrough connector with a static key gets the same value, each under a lease of its
own. Holding the value does not say whose lease it is, so possession alone revokes no
lease; the value plus a job's ID token revokes that job's lease and no other; and
introspection answers for all active leases at once, with only what they agree on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.broker_process import BrokerProcess, running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
#: two jobs of one repository: sibling jobs of one run, each its own check run
JOB_A = {"run_id": "7101", "check_run_id": "8101"}
JOB_B = {"run_id": "7101", "check_run_id": "8102"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of its own per test: the leases of the credential are counted."""
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(tmp_path, issuer, contacts) as process,
    ):
        yield process


def _lease(broker: BrokerProcess, job: dict[str, str]) -> dict[str, Any]:
    answer = broker.exchange(
        resource="vault", scope="ftp.read", subject_token=broker.id_token(**job)
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["access_token"] == broker.passthrough_credential
    return body


def _revoke(broker: BrokerProcess, **form: str) -> requests.Response:
    return requests.post(f"{broker.url}/revoke", data=form, timeout=10)


def _introspect(broker: BrokerProcess) -> dict[str, Any]:
    answer = broker.introspect(broker.passthrough_credential)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def test_holding_the_credential_alone_revokes_no_jobs_lease(broker: BrokerProcess) -> None:
    first, second = _lease(broker, JOB_A), _lease(broker, JOB_B)

    refused = _revoke(broker, token=broker.passthrough_credential, token_type_hint="access_token")

    assert refused.status_code == 400
    assert refused.json()["error"] == "unsupported_token_type"
    assert "send an ID token of the job with it" in refused.json()["error_description"]
    assert _introspect(broker)["active_leases"] == 2
    denied = [r for r in broker.audit_records() if r["decision"] == "denied"]
    sha256 = hashlib.sha256(broker.passthrough_credential.encode()).hexdigest()
    assert [(r["reason"], r["token_sha256"]) for r in denied] == [("shared_credential", sha256)]
    assert {first["token_id"], second["token_id"]}.isdisjoint(r["token_id"] for r in denied)


def test_the_credential_with_a_jobs_id_token_revokes_that_jobs_lease_only(
    broker: BrokerProcess,
) -> None:
    first, second = _lease(broker, JOB_A), _lease(broker, JOB_B)

    revoked = _revoke(
        broker,
        token=broker.passthrough_credential,
        subject_token=broker.id_token(**JOB_A),
        subject_token_type=ID_TOKEN_TYPE,
    )

    assert revoked.status_code == 200
    remaining = _introspect(broker)
    assert remaining["active"] is True  # the other job's lease is left alone
    assert (remaining.get("jti"), remaining.get("check_run_id")) == (second["token_id"], "8102")
    assert remaining["active_leases"] == 1
    records = [r for r in broker.audit_records() if r["decision"] == "revoked"]
    assert [(r["reason"], r["token_id"]) for r in records] == [
        ("revoke_endpoint_for_job", first["token_id"])
    ]
    _revoke(
        broker,
        token=broker.passthrough_credential,
        subject_token=broker.id_token(**JOB_B),
        subject_token_type=ID_TOKEN_TYPE,
    )
    assert _introspect(broker) == {"active": False}


def test_an_id_token_of_a_job_without_a_lease_revokes_nothing(broker: BrokerProcess) -> None:
    _lease(broker, JOB_A)
    other_run = {"run_id": "7102", "check_run_id": "8101"}  # same check run id, other run

    answer = _revoke(
        broker,
        token=broker.passthrough_credential,
        subject_token=broker.id_token(**other_run),
        subject_token_type=ID_TOKEN_TYPE,
    )

    assert answer.status_code == 200  # reveals nothing
    assert _introspect(broker)["active"] is True
    assert _introspect(broker)["active_leases"] == 1
    (nothing,) = [r for r in broker.audit_records() if r["decision"] == "revoked"]
    assert nothing["reason"] == "unknown_or_already_revoked"
    assert (nothing["claims"]["run_id"], nothing["claims"]["check_run_id"]) == ("7102", "8101")


def test_a_bad_id_token_with_the_credential_is_refused_and_audited(
    broker: BrokerProcess,
) -> None:
    _lease(broker, JOB_A)
    header, payload, signature = broker.id_token(**JOB_A).split(".")
    flipped = "B" if signature[100] == "A" else "A"
    forged = f"{header}.{payload}.{signature[:100]}{flipped}{signature[101:]}"

    answer = _revoke(
        broker,
        token=broker.passthrough_credential,
        subject_token=forged,
        subject_token_type=ID_TOKEN_TYPE,
    )
    missing_type = _revoke(
        broker, token=broker.passthrough_credential, subject_token=broker.id_token(**JOB_A)
    )

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert (missing_type.status_code, missing_type.json()["error"]) == (400, "invalid_request")
    assert _introspect(broker)["active_leases"] == 1
    reasons = [r["reason"] for r in broker.audit_records() if r["decision"] == "denied"]
    assert reasons == ["bad_signature", "unsupported_subject_token_type"]


def test_introspection_of_the_credential_says_only_what_every_lease_agrees_on(
    broker: BrokerProcess,
) -> None:
    _lease(broker, JOB_A)
    alone = _introspect(broker)
    assert (alone["active_leases"], alone["check_run_id"], alone["token_kind"]) == (
        1,
        "8101",
        "passthrough",
    )
    _lease(broker, JOB_B)

    both = _introspect(broker)

    assert both["active"] is True
    assert both["active_leases"] == 2
    assert (both["aud"], both["token_kind"], both["run_id"]) == ("vault", "passthrough", "7101")
    for differing in ("jti", "check_run_id"):
        assert differing not in both, differing  # each lease has its own
    assert both["scope"] == "ftp.read"
    assert both["exp"] >= alone["exp"]  # the latest expiry of the two
    assert both["iat"] == both["nbf"] == alone["iat"]  # the earliest issue
