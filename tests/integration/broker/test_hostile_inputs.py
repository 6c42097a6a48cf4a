"""Inputs that used to reach a 500 (an unaudited refusal, and a traceback per request),
and refusals raised before the exchange proper, against the real broker process: each
gets its RFC 6749 error and an audit record."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest
import requests

from support.broker_process import BrokerProcess

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


def _form(broker: BrokerProcess, **changes: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": broker.id_token(),
        "subject_token_type": ID_TOKEN_TYPE,
        "resource": "contacts",
        "scope": "contacts.read",
        **changes,
    }
    return {k: v for k, v in form.items() if v is not None}


def _last_audit(broker: BrokerProcess) -> dict[str, object]:
    with sqlite3.connect(broker.db_path) as db:
        (record,) = db.execute("SELECT record FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    loaded: dict[str, object] = json.loads(record)
    return loaded


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_ttl_of_unicode_digits_is_invalid_request(broker: BrokerProcess) -> None:
    response = requests.post(f"{broker.url}/token", data=_form(broker, ttl="²³"), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert (_last_audit(broker)["decision"], _last_audit(broker)["reason"]) == (
        "denied",
        "malformed_ttl",
    )


def test_a_non_ascii_kid_at_the_proxy_is_invalid_token(broker: BrokerProcess) -> None:
    header = _b64(json.dumps({"alg": "ES256", "kid": "k\u00e9", "typ": "at+jwt"}).encode())
    token = f"{header}.{_b64(b'{}')}.{_b64(b'x' * 64)}"
    response = requests.get(
        f"{broker.url}/proxy/contacts/v1/contacts",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_a_non_ascii_webhook_signature_is_401(broker: BrokerProcess) -> None:
    response = requests.post(
        f"{broker.url}/webhooks/github",
        data=b"{}",
        headers={
            "X-GitHub-Event": "workflow_job",
            "X-Hub-Signature-256": "sha256=\xe9" * 3,
            "Content-Type": "application/json",
        },
        timeout=5,
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type", "unsupported_grant_type"),
        ({"subject_token_type": "x"}, "invalid_request", "unsupported_subject_token_type"),
        ({"requested_token_type": "x"}, "invalid_request", "unsupported_requested_token_type"),
        ({"actor_token": "x"}, "invalid_request", "actor_token"),
        ({"subject_token": None}, "invalid_request", "missing_subject_token"),
        ({"resource": None}, "invalid_target", "missing_target"),
        ({"audience": "other"}, "invalid_target", "conflicting_target"),
        ({"ttl": "-1"}, "invalid_request", "malformed_ttl"),
    ],
)
def test_a_refusal_before_the_exchange_proper_is_audited(
    broker: BrokerProcess, changes: dict[str, str | None], error: str, reason: str
) -> None:
    response = requests.post(f"{broker.url}/token", data=_form(broker, **changes), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == error
    audited = _last_audit(broker)
    assert (audited["decision"], audited["reason"]) == ("denied", reason)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"scope=a&scope=b", "application/x-www-form-urlencoded"),
        (b"\xff=1", "application/x-www-form-urlencoded"),
        (b'{"grant_type": "x"}', "application/json"),
    ],
)
def test_a_body_problem_is_audited(broker: BrokerProcess, body: bytes, content_type: str) -> None:
    response = requests.post(
        f"{broker.url}/token", data=body, headers={"Content-Type": content_type}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert _last_audit(broker)["decision"] == "denied"


def test_revoke_by_id_with_a_bad_id_token_is_audited(broker: BrokerProcess) -> None:
    form = {"token_id": "tid-1", "subject_token_type": ID_TOKEN_TYPE, "subject_token": "x.y.z"}
    response = requests.post(f"{broker.url}/revoke", data=form, timeout=5)
    assert response.json()["error"] == "invalid_grant"
    audited = _last_audit(broker)
    assert (audited["decision"], audited["token_id"]) == ("denied", "tid-1")
