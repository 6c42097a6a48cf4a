"""Property: whatever bytes, Unicode, huge values or repeated keys arrive in any field of
any endpoint, the broker answers below 500 with a well-formed RFC 6749 error, issues
and forwards nothing, and audits each refusal of ``/token``, ``/revoke`` and an
authenticated ``/introspect``.

The real ASGI app (``create_app`` over ``Broker.from_config`` of a real config, real
SQLite store, loopback OIDC issuer and upstream) is driven in-process through
Starlette's TestClient. ``make test`` runs a bounded number of examples; set
``JOBTOKEN_FUZZ_EXAMPLES=5000`` for a longer run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from support.broker_app import in_process_broker
from support.broker_process import BrokerProcess

EXAMPLES = int(os.environ.get("JOBTOKEN_FUZZ_EXAMPLES", "120"))
FIELDS = (
    "grant_type", "subject_token", "subject_token_type", "requested_token_type", "resource",
    "audience", "scope", "ttl", "actor_token", "actor_token_type", "token", "token_id",
    "token_type_hint",
)  # fmt: skip
ERRORS = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "invalid_target", "unsupported_token_type",
}  # fmt: skip
WEBHOOK_KEYS = ("action", "workflow_job", "repository", "id", "run_id", "run_attempt",
                "check_run_url")  # fmt: skip
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
FORM = "application/x-www-form-urlencoded"


class Harness:
    def __init__(self, process: BrokerProcess, client: TestClient) -> None:
        self.process, self.client = process, client

    def __repr__(self) -> str:
        return "Harness(broker app, real SQLite store)"  # no secret in a failure report

    def counts(self) -> tuple[int, int]:
        with sqlite3.connect(self.process.db_path) as db:
            (audit,) = db.execute("SELECT count(*) FROM audit").fetchone()
            (tokens,) = db.execute("SELECT count(*) FROM tokens").fetchone()
        return int(audit), int(tokens)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with in_process_broker(tmp_path_factory.mktemp("fuzz")) as (process, _, client):
        yield Harness(process, client)


_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),  # UTF-8 encodable
    st.sampled_from(["²³", "١٢", "-1", "0", "9" * 30, "\x00", "k\u00e9", "\ud800"]),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "x" * n),
)
_pairs = st.lists(st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), _text))


def _encode(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}"
        for k, v in pairs
    ).encode()


_body = st.one_of(_pairs.map(_encode), st.binary(max_size=300))
_header = st.one_of(st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
_content_type = st.sampled_from([FORM, "application/json", "text/plain", FORM + "; charset=x"])


def _assert_rfc6749_error(response_body: bytes, status: int) -> None:
    assert 400 <= status < 500
    body = json.loads(response_body)
    assert body["error"] in ERRORS, body
    assert DESCRIPTION.fullmatch(body.get("error_description", ""))
    assert "access_token" not in body


def _basic(harness: Harness) -> str:
    pair = f"resource-server:{harness.process.client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(["/token", "/revoke", "/introspect"]),
    body=_body,
    content_type=_content_type,
    authenticated=st.booleans(),
)
def test_form_endpoints_refuse_anything_with_an_audited_rfc6749_error(
    harness: Harness, path: str, body: bytes, content_type: str, authenticated: bool
) -> None:
    headers = {"content-type": content_type}
    if authenticated:
        headers["authorization"] = _basic(harness)
    audit_before, tokens_before = harness.counts()
    response = harness.client.post(path, content=body, headers=headers)
    audit_after, tokens_after = harness.counts()
    assert response.status_code < 500, response.text
    assert tokens_after == tokens_before  # nothing issued
    if path == "/revoke" and response.status_code == 200:
        assert response.content == b""
    elif path == "/introspect" and response.status_code == 200:
        assert response.json() == {"active": False}
    else:
        _assert_rfc6749_error(response.content, response.status_code)
    if path != "/introspect" or authenticated:
        assert audit_after > audit_before, "a decision without an audit record"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "action",
                            "workflow_job",
                            "repository",
                            "id",
                            "run_id",
                            "run_attempt",
                            "check_run_url",
                        ]
                    ),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    signed=st.booleans(),
    signature=_header,
    delivery=_header,
    event=st.sampled_from([b"workflow_job", b"ping", b"push", b"\xff"]),
)
def test_the_webhook_never_fails_on_any_body_or_header(
    harness: Harness, payload: bytes, signed: bool, signature: bytes, delivery: bytes, event: bytes
) -> None:
    secret = harness.process.webhook_secret.encode()
    if signed:
        signature = b"sha256=" + hmac.new(secret, payload, hashlib.sha256).hexdigest().encode()
    _, tokens_before = harness.counts()
    response = harness.client.post(
        "/webhooks/github",
        content=payload,
        headers={
            b"x-github-event": event,
            b"x-hub-signature-256": signature,
            b"x-github-delivery": delivery,
        },
    )
    assert response.status_code < 500, response.text
    assert not signed or response.status_code != 401
    assert harness.counts()[1] == tokens_before


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    authorization=st.one_of(
        _header,
        st.tuples(st.text(max_size=60), st.text(max_size=60), _text).map(
            lambda t: (
                b"Bearer "
                + ".".join(
                    base64.urlsafe_b64encode(json.dumps(p).encode("utf-8", "surrogatepass"))
                    .rstrip(b"=")
                    .decode()
                    for p in ({"alg": "ES256", "kid": t[0], "typ": "at+jwt"}, {"jti": t[1]}, t[2])
                ).encode()
            )
        ),
    ),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    path=st.sampled_from(["v1/contacts", "v1/contacts;x", "%2e%2e/admin", "v1//x"]),
)
def test_the_proxy_forwards_nothing_for_a_forged_token(
    harness: Harness, authorization: bytes, method: str, path: str
) -> None:
    forwarded = len(harness.process.contacts.requests)
    response = harness.client.request(
        method, f"/proxy/contacts/{path}", headers={b"authorization": authorization}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] in {"invalid_token", "invalid_request", "not_found"}
    assert len(harness.process.contacts.requests) == forwarded
