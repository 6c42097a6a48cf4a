# ruff: noqa: E501 -- the attack tables keep one case per line (`# fmt: skip`)
"""Forged, resigned, oversized and replayed deliveries at ``POST /webhooks/github``: a
job-end report that GitHub did not sign revokes nothing and ends no job."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import uuid
from collections.abc import Callable

import pytest

from support.broker_app import exchange

from .conftest import App

RUN_ID, CHECK_RUN_ID = "8101", "9101"


def _job_end(app: App) -> bytes:
    claims = app.process.issuer.claims
    return json.dumps(
        {
            "action": "completed",
            "repository": {"id": int(claims["repository_id"])},
            "workflow_job": {"id": int(CHECK_RUN_ID), "run_id": int(RUN_ID), "run_attempt": 1},
        }
    ).encode()


def _sha256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _ended_jobs(app: App) -> int:
    with sqlite3.connect(app.process.db_path) as db:
        (count,) = db.execute("SELECT count(*) FROM ended_jobs").fetchone()
    return int(count)


Headers = Callable[[App, bytes], dict[str, str | bytes]]
FORGED: list[object] = [
    pytest.param(lambda a, b: {}, id="no-signature"),
    pytest.param(lambda a, b: {"x-hub-signature-256": "sha256=" + "0" * 64}, id="zero-signature"),
    pytest.param(lambda a, b: {"x-hub-signature-256": _sha256(a.process.webhook_secret, b + b" ")}, id="signature-of-another-body"),
    pytest.param(lambda a, b: {"x-hub-signature-256": _sha256("another-secret", b)}, id="signature-with-another-secret"),
    pytest.param(lambda a, b: {"x-hub-signature": "sha1=" + hmac.new(a.process.webhook_secret.encode(), b, hashlib.sha1).hexdigest()}, id="sha1-header-instead"),
    pytest.param(lambda a, b: {"x-hub-signature-256": _sha256(a.process.webhook_secret, b).upper()}, id="signature-upper-case"),
    pytest.param(lambda a, b: {"x-hub-signature-256": _sha256(a.process.webhook_secret, b)[7:]}, id="signature-without-prefix"),
    pytest.param(lambda a, b: {"x-hub-signature-256": _sha256(a.process.webhook_secret, b)[:-2]}, id="signature-truncated"),
    pytest.param(lambda a, b: {"x-hub-signature-256": _sha256(a.process.webhook_secret, b) + " "}, id="signature-trailing-space"),
    pytest.param(lambda a, b: {"x-hub-signature-256": "sha256=\u00e9\u00e9".encode("latin-1")}, id="signature-non-ascii"),
    pytest.param(lambda a, b: {"x-hub-signature-256": b"sha256=\xff\xfe"}, id="signature-invalid-utf8"),
]  # fmt: skip


@pytest.mark.parametrize("headers", FORGED)
def test_an_unsigned_job_end_is_401_and_revokes_nothing(app: App, headers: Headers) -> None:
    token = exchange(app.process, app.client)
    body, ended = _job_end(app), _ended_jobs(app)
    response = app.client.post(
        "/webhooks/github",
        content=body,
        headers={"x-github-event": "workflow_job", "x-github-delivery": str(uuid.uuid4()), **headers(app, body)},
    )  # fmt: skip
    assert response.status_code == 401
    assert response.json() == {"error": "invalid X-Hub-Signature-256"}
    assert _ended_jobs(app) == ended
    introspected = app.client.post(
        "/introspect", data={"token": token}, auth=("resource-server", app.process.client_secret)
    )
    assert introspected.json()["active"] is True


@pytest.mark.parametrize(
    ("size", "signed"),
    [pytest.param(1024 * 1024 + 1, True, id="huge-signed"), pytest.param(8 * 1024 * 1024, False, id="huge-unsigned")],
)  # fmt: skip
def test_a_huge_delivery_is_413_before_any_signature_work(
    app: App, size: int, signed: bool
) -> None:
    body = b'{"action":"completed","pad":"' + b"x" * size + b'"}'
    headers = {"x-github-event": "workflow_job"}
    if signed:
        headers["x-hub-signature-256"] = _sha256(app.process.webhook_secret, body)
    ended = _ended_jobs(app)
    response = app.client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 413
    assert _ended_jobs(app) == ended


@pytest.mark.parametrize(
    ("delivery", "status", "answer"),
    [
        pytest.param("x" * 65, 400, {"error": "malformed X-GitHub-Delivery"}, id="delivery-too-long"),
        pytest.param("a b", 400, {"error": "malformed X-GitHub-Delivery"}, id="delivery-space"),
        pytest.param("../../etc", 400, {"error": "malformed X-GitHub-Delivery"}, id="delivery-traversal"),
    ],
)  # fmt: skip
def test_a_malformed_delivery_id_is_400_and_ends_nothing(
    app: App, delivery: str, status: int, answer: dict[str, object]
) -> None:
    body, ended = _job_end(app), _ended_jobs(app)
    response = app.client.post(
        "/webhooks/github",
        content=body,
        headers={"x-github-event": "workflow_job", "x-github-delivery": delivery, "x-hub-signature-256": _sha256(app.process.webhook_secret, body)},
    )  # fmt: skip
    assert (response.status_code, response.json()) == (status, answer)
    assert _ended_jobs(app) == ended


def test_a_replayed_delivery_id_is_a_duplicate_that_changes_nothing(app: App) -> None:
    body, delivery = _job_end(app), str(uuid.uuid4())
    headers = {
        "x-github-event": "workflow_job",
        "x-github-delivery": delivery,
        "x-hub-signature-256": _sha256(app.process.webhook_secret, body),
    }
    first = app.client.post("/webhooks/github", content=body, headers=headers)
    assert first.status_code == 200
    ended = _ended_jobs(app)
    again = app.client.post("/webhooks/github", content=body, headers=headers)
    assert (again.status_code, again.json()) == (200, {"duplicate": True})
    assert _ended_jobs(app) == ended
